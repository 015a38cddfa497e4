"""Helpers for the storage tests: temporary S3 credentials from /storage/credentials, and
Debian's AWS CLI (/usr/bin/aws) configured with them for path-style access to lyceumd."""

import os
import subprocess
import tempfile

AWS = "/usr/bin/aws"


def credentials(server, key, **body):
    r = server.post("/storage/credentials", key, json=body or None)
    assert r.status_code == 200, r.text
    return r.json()


class Aws:
    """Runs `aws` with one set of credentials against the server's endpoint."""

    def __init__(self, creds, secret=None):
        self.creds = creds
        self.cfg = tempfile.NamedTemporaryFile("w", prefix="aws-config-", delete=False)
        self.cfg.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
        self.cfg.close()
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=creds["access_key"],
                        AWS_SECRET_ACCESS_KEY=secret or creds["secret_key"],
                        AWS_SESSION_TOKEN=creds["session_token"], AWS_DEFAULT_REGION="us-east-1",
                        AWS_CONFIG_FILE=self.cfg.name, AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                        AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

    def run(self, *args, check=True, timeout=300):
        r = subprocess.run([AWS, "--endpoint-url", self.creds["endpoint"], *args],
                           env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"aws {' '.join(args)}: rc {r.returncode}\n{r.stderr}"
        return r

    def close(self):
        os.unlink(self.cfg.name)
