#!/usr/bin/env python3
"""Where a wasm module's code bytes are: the code section's function bodies summed by the crate
that names them (from the module's `name` section, so the build must keep names), largest first.

    CARGO_PROFILE_WASM_RELEASE_STRIP=false trunk build --release --dist /tmp/dist-named
    python3 scripts/wasm-sizes.py /tmp/dist-named/*_bg.wasm [TOP] [REGEX]

With REGEX it also prints the total of the crates whose names match it, e.g. the WebGPU
backend's kernel compiler: 'cubecl|cubek|pliron|combine|ciborium|apfloat|fusion'.
A generic function is counted under the crate of its path (the symbol names the function, not
the types it was instantiated with); `(impl)` marks trait implementations, counted under the
implementing type's crate."""
import collections
import re
import sys


def leb(data, i):
    """An unsigned LEB128 at `i`: (value, next index)."""
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def skip_limits(data, j):
    flags = data[j]
    _, j = leb(data, j + 1)
    return leb(data, j)[1] if flags & 1 else j


def read(path):
    """(imported function count, body sizes, function names by index)."""
    data = open(path, "rb").read()
    i, imported, bodies, names = 8, 0, [], {}
    while i < len(data):
        section = data[i]
        size, i = leb(data, i + 1)
        start, end = i, i + size
        if section == 2:  # imports: functions among them shift the code section's indices
            count, j = leb(data, i)
            for _ in range(count):
                for _ in range(2):  # module and field names
                    n, j = leb(data, j)
                    j += n
                kind = data[j]
                j += 1
                if kind == 0:
                    _, j = leb(data, j)
                    imported += 1
                elif kind == 1:
                    j = skip_limits(data, j + 1)
                elif kind == 2:
                    j = skip_limits(data, j)
                elif kind == 3:
                    j += 2
        elif section == 10:  # code
            count, j = leb(data, i)
            for _ in range(count):
                n, body = leb(data, j)
                bodies.append(n + (body - j))
                j = body + n
        elif section == 0:  # custom: the name section's function names
            n, j = leb(data, i)
            if data[j:j + n] == b"name":
                j += n
                while j < end:
                    kind = data[j]
                    n, j = leb(data, j + 1)
                    if kind == 1:
                        count, k = leb(data, j)
                        for _ in range(count):
                            index, k = leb(data, k)
                            length, k = leb(data, k)
                            names[index] = data[k:k + length].decode("utf8", "replace")
                            k += length
                    j += n
        i = end
    return imported, bodies, names


def crate(name):
    """The crate a function's symbol (mangled, or demangled by wasm-bindgen) starts with."""
    m = re.match(r"_ZN(\d+)", name)
    if m:
        name = name[m.end():m.end() + int(m.group(1))].replace("_$LT$", "<").replace("$u20$", " ")
    impl = name.startswith("<")
    first = re.match(r"<?(?:&(?:mut )?)?([A-Za-z_0-9]+)", name)
    return (first.group(1) if first else name[:30]) + (" (impl)" if impl else "")


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    group = re.compile(sys.argv[3]) if len(sys.argv) > 3 else None
    imported, bodies, names = read(path)
    if not names:
        sys.exit(f"{path} has no name section: build it with CARGO_PROFILE_WASM_RELEASE_STRIP=false")
    size, count = collections.Counter(), collections.Counter()
    for k, n in enumerate(bodies):
        c = crate(names.get(k + imported, "?"))
        size[c] += n
        count[c] += 1
    print(f"code: {sum(bodies) / 1e6:.2f} MB in {len(bodies)} functions")
    for c, n in size.most_common(top):
        print(f"{n / 1e6:7.3f} MB {count[c]:6d}  {c}")
    if group:
        total = sum(n for c, n in size.items() if group.search(c))
        print(f"crates matching {group.pattern!r}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
