"""Helpers for the storage tests: temporary S3 credentials from /storage/credentials, and
Debian's AWS CLI (/usr/bin/aws) configured with them for path-style access to lyceumd."""

import datetime
import hashlib
import hmac
import http.client
import os
import subprocess
import tempfile
import urllib.parse

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


def _hmac(k, m):
    return hmac.new(k, m.encode(), hashlib.sha256).digest()


def _enc(s):
    return urllib.parse.quote(s, safe="-_.~")


def _sign(secret, amz, scope, creq):
    """The SigV4 signature of canonical request creq made at amz under scope."""
    date, region, service, _ = scope.split("/")
    skey = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service),
                 "aws4_request")
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(skey, sts.encode(), hashlib.sha256).hexdigest()


def _path(creds, key, bucket):
    bucket = bucket or creds["bucket_name"]
    return f"/{bucket}" + ("/" + urllib.parse.quote(key, safe="/-_.~") if key is not None else "")


def _when(skew):
    """The time a request says it was made (x-amz-date), skew seconds from now."""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=skew)
    return t.strftime("%Y%m%dT%H%M%SZ")


def signed_request(server, creds, method, key=None, query=None, headers=None, body=b"",
                   bucket=None, payload=None, skew=0, scope=None, access_key=None, secret=None,
                   token=None):
    """One S3 request signed with SigV4 by hand (header-signed, the payload's SHA-256 declared,
    or payload as x-amz-content-sha256), for what the AWS CLI will not send: odd headers, huge
    numbers, raw XML listings, a clock skew seconds off, a scope of one's own ("date/region/
    service/aws4_request", {date} filled in), another access key, secret or session token.
    key is the object key (decoded); query a dict; returns (status, body bytes)."""
    amz = _when(skew)
    scope = (scope or "{date}/us-east-1/s3/aws4_request").format(date=amz[:8])
    path = _path(creds, key, bucket)
    q = sorted((_enc(k), _enc(v)) for k, v in (query or {}).items())
    cq = "&".join(f"{k}={v}" for k, v in q)
    payload = payload or hashlib.sha256(body).hexdigest()
    hdrs = {"host": f"127.0.0.1:{server.port}", "x-amz-content-sha256": payload,
            "x-amz-date": amz,
            "x-amz-security-token": creds["session_token"] if token is None else token}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    names = sorted(hdrs)
    creq = "\n".join([method, path, cq, "".join(f"{n}:{str(hdrs[n]).strip()}\n" for n in names),
                      ";".join(names), payload])
    sig = _sign(secret or creds["secret_key"], amz, scope, creq)
    hdrs["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key or creds['access_key']}/"
                             f"{scope}, SignedHeaders={';'.join(names)}, Signature={sig}")
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


def presign(server, creds, method, key, expires, skew=0, scope=None):
    """A presigned URL (query-signed, UNSIGNED-PAYLOAD, host the only signed header) for method
    on key, made skew seconds from now and valid for expires seconds from then."""
    amz = _when(skew)
    scope = (scope or "{date}/us-east-1/s3/aws4_request").format(date=amz[:8])
    path = _path(creds, key, None)
    params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
              "X-Amz-Credential": f"{creds['access_key']}/{scope}", "X-Amz-Date": amz,
              "X-Amz-Expires": str(expires), "X-Amz-Security-Token": creds["session_token"],
              "X-Amz-SignedHeaders": "host"}
    cq = "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in params.items()))
    creq = "\n".join([method, path, cq, f"host:127.0.0.1:{server.port}\n", "host",
                      "UNSIGNED-PAYLOAD"])
    sig = _sign(creds["secret_key"], amz, scope, creq)
    return f"{server.base}{path}?{cq}&X-Amz-Signature={sig}"
