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


def signed_request(server, creds, method, key=None, query=None, headers=None, body=b"",
                   bucket=None, payload=None):
    """One S3 request signed with SigV4 by hand (header-signed, the payload's SHA-256 declared,
    or payload as x-amz-content-sha256), for what the AWS CLI will not send: odd headers, huge
    numbers, raw XML listings. key is the object key (decoded); query a dict; returns (status,
    body bytes)."""
    import datetime
    import hashlib
    import hmac
    import http.client
    import urllib.parse

    def h(k, m):
        return hmac.new(k, m.encode(), hashlib.sha256).digest()

    def enc(s):
        return urllib.parse.quote(s, safe="-_.~")

    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz[:8]}/us-east-1/s3/aws4_request"
    bucket = bucket or creds["bucket_name"]
    path = f"/{bucket}" + ("/" + urllib.parse.quote(key, safe="/-_.~") if key is not None else "")
    q = sorted((enc(k), enc(v)) for k, v in (query or {}).items())
    cq = "&".join(f"{k}={v}" for k, v in q)
    payload = payload or hashlib.sha256(body).hexdigest()
    hdrs = {"host": f"127.0.0.1:{server.port}", "x-amz-content-sha256": payload,
            "x-amz-date": amz, "x-amz-security-token": creds["session_token"]}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    names = sorted(hdrs)
    creq = "\n".join([method, path, cq, "".join(f"{n}:{str(hdrs[n]).strip()}\n" for n in names),
                      ";".join(names), payload])
    skey = h(h(h(h(("AWS4" + creds["secret_key"]).encode(), amz[:8]), "us-east-1"), "s3"),
             "aws4_request")
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(skey, sts.encode(), hashlib.sha256).hexdigest()
    hdrs["authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds['access_key']}/{scope}, "
                             f"SignedHeaders={';'.join(names)}, Signature={sig}")
    del hdrs["host"]
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.putrequest(method, path + ("?" + cq if cq else ""), skip_accept_encoding=True)
    for k, v in hdrs.items():
        c.putheader(k, v)
    if "content-length" not in hdrs:
        c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data
