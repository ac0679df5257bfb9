#!/usr/bin/env python3
"""Trunk post-build hook: give the built page a Content-Security-Policy.

The policy allows the page's own origin and the ResNet18 weights download only (Hugging Face,
which redirects to its CDN hosts), WebAssembly compilation, and blob:/data: images (the photo
thumbnails) — nothing else: no other scripts, no inline code but Trunk's own loader, whose
SHA-256 is computed here because Trunk writes it at build time. It goes
  - into index.html as a <meta http-equiv> (every static host serves it), and
  - into _headers (Netlify / Cloudflare Pages format) as a real header, which also covers the
    engine's worker (a <meta> policy does not reach workers) and frame-ancestors.
tests/e2e's server sends _headers, so the page is tested under the policy.

_headers also makes the page cross-origin isolated (COOP same-origin, COEP credentialless),
which browsers require before they give a page SharedArrayBuffer: onnxruntime-web's "Check in
ONNX Runtime" then runs on several threads, and so does the engine's threaded module. `credentialless` rather than `require-corp`, so the
weights download from Hugging Face's CDN (a CORS fetch) needs nothing from that host; where a
browser does not know it, the page is simply not isolated and the check runs on one thread.
"""
import base64
import hashlib
import os
import re
import sys

WEIGHTS_HOSTS = "https://huggingface.co https://*.huggingface.co https://*.hf.co"


def policy(script_hashes, header):
    parts = [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval' " + " ".join(f"'sha256-{h}'" for h in script_hashes),
        f"connect-src 'self' blob: {WEIGHTS_HOSTS}",
        # blob:: wasm-bindgen-rayon starts the threaded engine's threads from a blob: copy of its
        # own worker script (scripts/threaded-module.sh).
        "worker-src 'self' blob:",
        "img-src 'self' blob: data:",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
    if header:  # ignored (and warned about) in a <meta>
        parts.append("frame-ancestors 'none'")
    return "; ".join(parts)


def main():
    dist = os.environ.get("TRUNK_STAGING_DIR") or (sys.argv[1] if len(sys.argv) > 1 else "dist")
    index = os.path.join(dist, "index.html")
    html = open(index, encoding="utf-8").read()
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
    hashes = [base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() for s in inline]
    meta = f'<meta http-equiv="Content-Security-Policy" content="{policy(hashes, False)}">'
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>\s*', "", html)
    html = html.replace('<meta charset="utf-8">', '<meta charset="utf-8">\n  ' + meta, 1)
    if meta not in html:
        sys.exit("csp: index.html has no <meta charset=\"utf-8\"> to put the policy after")
    open(index, "w", encoding="utf-8").write(html)
    with open(os.path.join(dist, "_headers"), "w", encoding="utf-8") as f:
        f.write(f"/*\n  Content-Security-Policy: {policy(hashes, True)}\n")
        f.write("  Cross-Origin-Opener-Policy: same-origin\n")
        f.write("  Cross-Origin-Embedder-Policy: credentialless\n")
    print(f"csp: {len(hashes)} inline script(s) hashed into index.html and _headers")


if __name__ == "__main__":
    main()
