#!/usr/bin/env bash
# Build the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*)
# from the tests' vectors and fixtures: tests/fixtures/auth-vectors.json
# (the copy of shared/research/auth-vectors.json), tests/fixtures/hls/*,
# config/*.toml and tests/fixtures/config/**, plus hand-written inputs for
# the corners each parser has. Idempotent: seeds are rewritten, inputs the
# fuzzer found are kept. Needs python3 (present on Debian and in CI).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY'
import glob, json, os, pathlib

root = pathlib.Path("fuzz/corpus")
count = {}

def seed(target, data):
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    n = count.get(target, 0)
    count[target] = n + 1
    (d / f"seed-{n:04d}").write_bytes(data)

def request(variant, ip, now, target, user="", headers=()):
    """The request format of fuzz/src/lib.rs."""
    lines = [str(ip), str(now), target, user] + [f"{k}: {v}" for k, v in headers]
    return bytes([variant]) + "\n".join(lines).encode()

vectors = json.load(open("tests/fixtures/auth-vectors.json"))["schemes"]
def cases(name):
    return [c["inputs"] for c in vectors[name]["cases"]]

# secure_link: variant 0 = documented md5 form, 1/2 = secret form, 3 = Ministra.
for c in cases("nginx_secure_link"):
    seed("auth_secure_link", request(0, c.get("client_ip", ""), c.get("now", ""), c["request_target"]))
for c in cases("nginx_secure_link_secret"):
    for v in (1, 2):
        seed("auth_secure_link", request(v, "127.0.0.1", 1700000000, c["request_target"]))
for c in cases("ministra_tmp_link"):
    seed("auth_secure_link", request(3, c["client_ip"], c["now"], c["request_target"]))
seed("auth_secure_link", request(4, "::1", 1700000000, "/live/ch1/index.m3u8?md5=AAAAAAAAAAAAAAAAAAAAAA"))

for c in cases("nimble_wmsauth"):
    target = f'{c.get("request_path", "/live/stream/playlist.m3u8")}?wmsAuthSign={c["wmsAuthSign"]}'
    for v in (0, 1):
        seed("auth_wmsauth", request(v, c.get("client_ip", ""), c.get("now", ""), target, "viewer42"))

for c in cases("wowza_securetoken"):
    target = f'/{c["content_path"]}/playlist.m3u8?{c["query"]}'
    v = 1 if c.get("include_ip") else 0
    seed("auth_wowza", request(v, c.get("client_ip", ""), c.get("now", ""), target))

for c in cases("akamai_edgeauth"):
    tok = c["token"]
    for v, name in ((0, "__token__"), (1, "hdnts"), (2, "__hdnea__")):
        seed("auth_akamai", request(v, c.get("client_ip", ""), c.get("now", ""), f'{c["path"]}?{name}={tok}', "viewer42"))
    seed("auth_akamai", request(1, c.get("client_ip", ""), c.get("now", ""), c["path"], "", [("cookie", f"a=b; hdnts={tok}"), ("hdnts", tok)]))

for c in cases("cesbo_astra"):
    if c.get("kind") != "securetoken":
        continue
    subject = c["subject"]
    path = subject if subject.startswith("/") else f"/tv/{subject}/index.m3u8"
    seed("auth_cesbo", request(0, c["client_ip"], c["now"], f'{path}?token={c["token"]}'))
    seed("auth_cesbo", request(1, c["client_ip"], c["now"], f'{path}?t={c["token"]}'))

for q in ["token=3f9c1e7a5b2d4c68a1e0f9b7c3d5e2a4", "auth=alice:open%20sesame", "token=tok-bob",
          "token=b%2520b", "auth=bob:pw:with:colons", "auth=carol:", "TOKEN=x&token=y", "auth=%ff:%00", "token"]:
    seed("auth_token", request(0, "10.0.0.1", 1700000000, f"/live/ch1/index.m3u8?{q}", "alice"))

# Paths: every request target of the vectors, and the tricks path.rs refuses.
paths = ["/live/ch1/index.m3u8", "/live/cha/..;/chb/index.m3u8", "/a/%2e%2e/b", "/a%2F..%2Fb",
         "/s/a%2F%2Flink", "/%252F", "/a/./b/../../..", "/x\\y", "/%5c", "/%c0%af", "/caf%C3%A9/",
         "/live//ch1///x", "*", "/a;b=c/d", "/a/%3B/..", "/live/ch1/ index.m3u8", "/%E3%80%80/x"]
for name in vectors:
    for c in vectors[name]["cases"]:
        t = c["inputs"].get("request_target") or c["inputs"].get("request_path")
        if t:
            paths.append(t)
for p in paths:
    seed("path_route", p + "\n/live/\n/live\n/\n/tv/x")
    seed("path_route", p + "?tg=abc&keep=1&Token=2&&hash=3&tokx=4&wowzatokenhash=5")

# Playlists: every fixture input, plain and encrypting, under each path.
for f in sorted(glob.glob("tests/fixtures/hls/*.m3u8")):
    if ".out." in f:
        continue
    body = pathlib.Path(f).read_bytes()
    for opts in (0x00, 0x01 | (5 << 3), 0x03, 0x05 | (15 << 3), 0x81):
        seed("hls_rewrite", bytes([opts]) + body)
for body in [b'#EXTM3U\n#EXTINF:1,\n http://evil.example/a.ts\n',
             '#EXTM3U\n#EXT-X-MAP:URI="\u00a0//evil.example/i.mp4"\n#EXTINF:1,\n\u3000https://evil.example/s.ts\n'.encode(),
             b'#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n']:
    seed("hls_rewrite", b"\x01" + body)
    seed("hls_rewrite", b"\x00" + body)

# Configs: the example and every fixture, valid and invalid.
for f in sorted(glob.glob("config/*.toml") + glob.glob("tests/fixtures/config/*/*.toml")):
    seed("config_toml", pathlib.Path(f).read_bytes())

# Admin-API bodies (first byte: 0 user, 1 package, 2 blocklist, 3 snapshot).
user = {"tokens": ["t-1234567890"], "password": "secret-password", "max_sessions": 2,
        "packages": ["basic", "cfg"], "ips": ["10.0.0.0/8", "::1"], "expires_at": "2027-01-01T00:00:00Z",
        "disabled": False}
seed("admin_json", b"\x00" + json.dumps(user).encode())
seed("admin_json", b"\x00" + b'{"password":"sha256:df53c27a66157885ba143e34f25d6380e12168b0f7da4f0c46efa54cd9a083b7"}')
seed("admin_json", b"\x00" + b'{"tokens":["dup","dup"],"packages":["nope"],"ips":["300.1.1.1/8"]}')
seed("admin_json", b"\x01" + b'{"channels":["ch1","sports/*","?x","[a"]}')
seed("admin_json", b"\x02" + b'{"users":["alice"],"tokens":["alice-token-1"],"ips":["0.0.0.0/0","::/0"]}')
snap = {"users": {"u1": user, "u2": {"packages": ["p1"]}}, "packages": {"p1": {"channels": ["*"]}},
        "blocklist": {"users": ["u2"], "tokens": [], "ips": []}}
seed("admin_json", b"\x03" + json.dumps(snap).encode())
seed("admin_json", b"\x03" + b'{"users":{"a":{},"a":{}}}')

# Control-plane answers, tollgate mode (first byte: version held).
for held in (0, 1, 2):
    seed("sync_native", bytes([held]) + json.dumps({"version": 1}).encode())
    seed("sync_native", bytes([held]) + json.dumps({"version": 7, "snapshot": snap}).encode())
    seed("sync_native", bytes([held]) + json.dumps({"version": 8, "delta": {
        "since": 7, "users": {"alice": None, "u9": user}, "packages": {"p2": {"channels": ["c"]}, "basic": None},
        "blocklist": {"users": ["x"], "tokens": ["y"], "ips": ["192.0.2.0/24"]}}}).encode())
    seed("sync_native", bytes([held]) + json.dumps({"version": 9, "deny": {"users": ["bob"], "tokens": ["tok-secret-1"], "ips": []}}).encode())
seed("sync_native", b"\x00" + b'{"version":1,"snapshot":{},"delta":{"since":0}}')
seed("sync_native", b"\x00" + b'{"version":"secret-token-value"}')

# Nimble PPV: fields id, puzzle, deny list (length-prefixed), then a body/answer.
def field(s):
    b = s.encode()[:255]
    return bytes([len(b)]) + b
for c in cases("nimble_ppv_sync"):
    if "sync_body" in c:
        c = json.loads(c["sync_body"])
        body = json.dumps(c)
    else:
        body = json.dumps({"ID": c["ID"], "Puzzle": c["Puzzle"], "Signature": c["Signature"], "PayPerViewInfo": {}})
    ids = ["1", "viewer-2"]
    head = field(c["ID"]) + field(c["Puzzle"]) + bytes([len(ids)]) + b"".join(field(i) for i in ids)
    seed("sync_ppv", head + body.encode())
    seed("sync_ppv", head + json.dumps({"DenyList": {"ID": [1, "2", 3.5]}, "Solution": "x"}).encode())

for h in ["bytes=0-99", "bytes=-500", "bytes=100-", "bytes=1-2,3-4", "items=0-1", " BYTES = 5 - 9 ",
          "bytes=18446744073709551615-", "bytes=-0", "bytes=9-1", "bytes=0-18446744073709551616"]:
    seed("range_header", bytes(8 * [0]) + b"\x00" + bytes(16 * [0]) + b"\x00\x00" + h.encode())
    seed("range_header", (1000).to_bytes(8, "big") + b"\x00" + (10).to_bytes(8, "big") + b"\x00"
         + (20).to_bytes(8, "big") + b"\x00" + h.encode())

# Capabilities and tags: structured fields, then text.
import hashlib
for i in range(16):
    h = hashlib.sha256(bytes([i])).digest() * 4
    seed("capability", bytes([i % 4]) + h[: 40 + i * 7])
    seed("segment_tag", bytes([i % 8]) + h[: 30 + i * 5] + b"e.7.3.1042.0.-.AAAAAAAAAAAAAAAA")
seed("segment_tag", b"\x00" * 40 + b"c.0.10.AAAAAAAAAAAAAAAA")

for t, n in sorted(count.items()):
    print(f"{t}: {n} seeds")
PY
