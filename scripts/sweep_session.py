"""A person's MFA-verified session for the hostile sweep (scripts/sweep.sh):
signs in to `vigil demo` as BASE EMAIL PASSWORD, enrols a TOTP authenticator
(RFC 6238: SHA-1, 6 digits, 30 s) and passes the second factor, then prints
the session cookie and its CSRF token, one per line."""

import base64
import hashlib
import hmac
import http.cookiejar
import re
import struct
import sys
import time
import urllib.parse
import urllib.request

base, email, password = sys.argv[1:4]
jar = http.cookiejar.CookieJar()
web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def post(path, fields):
    data = urllib.parse.urlencode(fields).encode()
    return web.open(base + path, data).read().decode()


def csrf(page):
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    if not m:
        sys.exit("no CSRF token on the page")
    return m.group(1)


def totp(secret, at):
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[o : o + 4])[0] & 0x7FFFFFFF) % 1_000_000)


post("/login", {"email": email, "password": password})
page = web.open(base + "/mfa").read().decode()
page = post("/mfa/enroll", {"csrf": csrf(page)})
secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page).group(1)
post("/mfa", {"csrf": csrf(page), "code": totp(secret, time.time())})
page = web.open(base + "/mfa").read().decode()
if "passed your second factor" not in page:
    sys.exit("the second factor was not accepted")
cookie = next(c for c in jar if c.name == "vigil_session")
print(f"{cookie.name}={cookie.value}")
print(csrf(page))
