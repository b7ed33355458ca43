#!/usr/bin/env python3
"""Generate src/apiserver/patch/meta.rs: strategic merge patch metadata
(patch strategy and merge key per field) for the built-in kinds.

Usage: python3 scripts/gen-patch-meta.py [--go-binary PATH ...] [-o OUT]

Upstream derives `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`
from the Go struct tags `patchStrategy:"merge" patchMergeKey:"name"` of the API
types. Those tags are read here from the same Go binaries (kubectl, anthoscli)
and with the same reader as scripts/gen-protobuf-schema.py; the message graph
(which message a field holds, JSON names, inline fields) is read from that
script's output, src/apiserver/protobuf/schema.rs, joined on (message, protobuf
tag). Only messages from which a field with patch metadata can be reached are
emitted.

Python 3.11, standard library only.
"""

import argparse
import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

spec = importlib.util.spec_from_file_location("genpb", os.path.join(HERE, "gen-protobuf-schema.py"))
genpb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(genpb)

# flags in table.rs of the protobuf schema
MSG, KIND_MASK, REP, MAP, PRESENCE_MASK, IN = 6, 7, 0x08, 0x10, 0x60, 0x60
FLAG_VALUES = {"STR": 0, "BOOL": 1, "I32": 2, "I64": 3, "F64": 4, "BYTES": 5, "MSG": 6, "REP": 0x08, "MAP": 0x10, "Z": 0x20, "A": 0x40, "IN": 0x60}


def parse_schema(path):
    """-> [(name, [(tag, json, flags, msg)])], [(apiVersion, kind, msg)]"""
    text = open(path, encoding="utf-8").read()
    msgs = []
    for m in re.finditer(r'^    /\* (\d+) \*/ M\("([^"]+)", \d+, &\[(.*)\]\),$', text, re.M):
        assert int(m.group(1)) == len(msgs)
        fields = []
        for f in re.finditer(r'F\((\d+), "([^"]*)", ([A-Z0-9|]+), (\d+)\)', m.group(3)):
            flags = 0
            for x in f.group(3).split("|"):
                flags |= FLAG_VALUES[x]
            fields.append((int(f.group(1)), f.group(2), flags, int(f.group(4))))
        msgs.append((m.group(2), fields))
    kinds = [(a, k, int(i)) for a, k, i in re.findall(r'^    \("([^"]*)", "([^"]*)", (\d+)\),$', text, re.M)]
    return msgs, kinds


def patch_tags(tag):
    """Go struct tag -> (strategies, merge key) or None."""
    s = re.search(r'patchStrategy:"([^"]*)"', tag)
    k = re.search(r'patchMergeKey:"([^"]*)"', tag)
    if not s and not k:
        return None
    return (s.group(1).split(",") if s else []), (k.group(1) if k else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--go-binary", action="append", help="Go binary to read struct tags from (repeatable)")
    ap.add_argument("--schema", default=os.path.join(ROOT, "src/apiserver/protobuf/schema.rs"))
    ap.add_argument("-o", "--out", default=os.path.join(ROOT, "src/apiserver/patch/meta.rs"))
    args = ap.parse_args()

    msgs, kinds = parse_schema(args.schema)
    go_bins = args.go_binary if args.go_binary is not None else genpb.default_go_binaries()
    if not go_bins:
        sys.exit("no Go binary with API types found")
    go = {}  # short name -> {proto tag: GoField}
    go_desc = []
    for b in go_bins:
        info, ver = genpb.parse_go_binary(b)
        go_desc.append("%s (%s, %d structs)" % (os.path.basename(b), ver or "?", len(info)))
        for k, v in info.items():
            go.setdefault(genpb.short_name(k), v)

    def go_info(name):
        """Go fields of a message, else of the same type in a sibling version."""
        if name in go:
            return go[name], False
        group, tname = name.rsplit(".", 2)[0], name.rsplit(".", 1)[1]
        cands = sorted(k for k in go if k.rsplit(".", 1)[1] == tname and k.rsplit(".", 2)[0] == group)
        return (go[cands[-1]], True) if cands else ({}, False)

    # effective fields (inline ones flattened): json -> (strategies, key, msg|None, is_map)
    def own_fields(i, seen=()):
        name, fields = msgs[i]
        gi, borrowed = go_info(name)
        out = []
        for tag, json, flags, msg in fields:
            if flags & PRESENCE_MASK == IN and flags & KIND_MASK == MSG:
                if msg not in seen:
                    out += own_fields(msg, seen + (i,))
                continue
            g = gi.get(tag)
            if g is not None and borrowed and g.json != json:
                g = None
            pt = patch_tags(g.tag) if g is not None else None
            child = msg if flags & KIND_MASK == MSG else None
            out.append((json, pt, child, bool(flags & MAP)))
        return out

    eff = [own_fields(i) for i in range(len(msgs))]

    # messages from which patch metadata can be reached
    relevant = set(i for i, fs in enumerate(eff) if any(pt for _, pt, _, _ in fs))
    changed = True
    while changed:
        changed = False
        for i, fs in enumerate(eff):
            if i not in relevant and any(c in relevant for _, _, c, _ in fs if c is not None):
                relevant.add(i)
                changed = True
    order = sorted(relevant, key=lambda i: msgs[i][0])
    index = {m: n for n, m in enumerate(order)}

    lines = []
    w = lines.append
    w("// @generated by scripts/gen-patch-meta.py -- DO NOT EDIT.")
    w("//")
    w("// Strategic merge patch metadata: the Go struct tags patchStrategy and")
    w("// patchMergeKey of the API types, read from the type descriptors of: %s;" % "; ".join(go_desc))
    w("// message graph and JSON names from src/apiserver/protobuf/schema.rs. Only")
    w("// messages from which a field with patch metadata can be reached are listed.")
    w("//")
    w("// PM(message, fields sorted by JSON name); PF(JSON name, strategy flags,")
    w("// merge key, message index or NONE).")
    w("use super::*;")
    w("")
    w("pub static MESSAGES: &[PM] = &[")
    for n, i in enumerate(order):
        fs = []
        for json, pt, child, is_map in sorted(eff[i], key=lambda f: f[0]):
            flags = []
            key = ""
            if pt:
                strategies, key = pt
                for s in strategies:
                    flag = {"merge": "MERGE", "retainKeys": "RETAIN_KEYS", "replace": "REPLACE"}.get(s)
                    if flag is None:
                        sys.exit("unknown patch strategy %r in %s.%s" % (s, msgs[i][0], json))
                    flags.append(flag)
            if child in relevant and is_map:
                flags.append("MAP_VALUES")
            if not flags and child not in relevant:
                continue
            fs.append('PF("%s", %s, "%s", %s)' % (json, "|".join(flags) or "0", key, index[child] if child in relevant else "NONE"))
        w('    /* %d */ PM("%s", &[%s]),' % (n, msgs[i][0], ", ".join(fs)))
    w("];")
    w("")
    w("/// (apiVersion, kind, message index or NONE), sorted: every kind with")
    w("/// metadata in the protobuf schema (lists excepted).")
    w("pub static KINDS: &[(&str, &str, u16)] = &[")
    nk = 0
    for av, kind, i in sorted(kinds):
        if kind.endswith("List") or not any(j == "metadata" for j, _, _, _ in eff[i]):
            continue
        nk += 1
        w('    ("%s", "%s", %s),' % (av, kind, index[i] if i in relevant else "NONE"))
    w("];")
    text = "\n".join(lines) + "\n"
    out = os.path.normpath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        fh.write(text)
    nf = sum(1 for l in lines for _ in re.finditer(r"PF\(", l))
    print("wrote %s: %d messages, %d fields, %d kinds, %d bytes" % (out, len(order), nf, nk, len(text)))


if __name__ == "__main__":
    main()
