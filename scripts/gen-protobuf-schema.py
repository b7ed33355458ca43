#!/usr/bin/env python3
"""Generate src/apiserver/protobuf/schema.rs: the Kubernetes protobuf schema
as data tables, for the hand-written decoder in src/apiserver/protobuf/mod.rs.

Usage: python3 scripts/gen-protobuf-schema.py [--go-binary PATH ...] [-o OUT] [--report]
(--report lists guessed JSON names and fields without Go information.)

Sources (no network; all on this machine):

* k8s-pb (~/.cargo/registry/src/*/k8s-pb-*): prost structs generated from the
  upstream generated.proto files. They give every message's field tags, wire
  types, cardinality and nested message types.
* k8s-openapi (~/.cargo/registry/src/*/k8s-openapi-*, src/v1_33 first, then
  newer versions): its serde impls give each Rust field's JSON name and its
  required-ness.
* Go type information read out of Go binaries that link the API types
  (kubectl, newest first; then anthoscli for apiextensions). Go's protobuf
  code always writes non-pointer fields (even zero values), and Go's JSON
  encoder then drops the zero ones tagged `omitempty`; so to produce the JSON
  upstream produces, the decoder must know, per field, whether the Go field is
  a pointer and whether it is `omitempty`, and which fields are `,inline`.
  None of that is in the .proto files. The struct tags (json name, omitempty,
  protobuf tag number) and the field kinds (pointer or not) are read from the
  binaries' runtime type descriptors (statically linked, non-PIE ELF, Go 1.21+
  `abi.Type` layout). Fields without Go information fall back to: JSON name
  from k8s-openapi (else lowerCamelCase), and "omit zero scalars unless
  k8s-openapi says the field is required".

Python 3.11, standard library only.
"""

import argparse
import glob
import os
import re
import shutil
import struct
import sys

HOME = os.path.expanduser("~")

# Packages (k8s-pb module paths) never decoded: test types, discovery
# documents and metrics (responses only), admission reviews (sent by the
# apiserver, not to it), image policy (webhook-only).
EXCLUDE_PREFIXES = (
    "apimachinery/pkg/apis/testapigroup",
    "api/apidiscovery/",
    "metrics/",
    "api/admission/",
    "api/imagepolicy/",
)

# API groups by k8s-pb directory, for packages whose group is not given by a
# Resource impl.
GROUP_BY_DIR = {
    "api/core": "",
    "apimachinery/pkg/apis/meta": "meta.k8s.io",
    "apiextensions_apiserver/pkg/apis/apiextensions": "apiextensions.k8s.io",
    "kube_aggregator/pkg/apis/apiregistration": "apiregistration.k8s.io",
}

# Kinds without metadata that clients send (besides meta/v1 option kinds).
EXTRA_KINDS = {
    "api/core/v1": [
        "PodLogOptions",
        "PodExecOptions",
        "PodAttachOptions",
        "PodPortForwardOptions",
        "PodProxyOptions",
        "NodeProxyOptions",
        "ServiceProxyOptions",
        "SerializedReference",
    ],
    "apiextensions_apiserver/pkg/apis/apiextensions/v1": ["ConversionReview"],
    "apimachinery/pkg/apis/meta/v1": [
        "DeleteOptions",
        "CreateOptions",
        "UpdateOptions",
        "PatchOptions",
        "GetOptions",
        "ListOptions",
        "WatchEvent",
    ],
}
# meta/v1 kinds that every group version accepts (metav1.AddToGroupVersion).
META_OPTION_KINDS = [
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
    "GetOptions",
    "ListOptions",
    "WatchEvent",
]

# Messages with a custom JSON form (code in mod.rs; numbers match `special`).
SPECIAL = {
    "apimachinery/pkg/util/intstr.IntOrString": 1,
    "apimachinery/pkg/api/resource.Quantity": 2,
    "apimachinery/pkg/apis/meta/v1.Time": 3,
    "apimachinery/pkg/apis/meta/v1.MicroTime": 4,
    "apimachinery/pkg/apis/meta/v1.Duration": 5,
    "apimachinery/pkg/runtime.RawExtension": 6,
    "apimachinery/pkg/apis/meta/v1.FieldsV1": 6,
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.JSON": 6,
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrArray": 7,
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrBool": 8,
    "apiextensions_apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrStringArray": 9,
    # named slice types wrapped in a message: JSON is the array itself
    "api/authentication/v1.ExtraValue": 10,
    "api/authentication/v1beta1.ExtraValue": 10,
    "api/authorization/v1.ExtraValue": 10,
    "api/authorization/v1beta1.ExtraValue": 10,
    "api/certificates/v1.ExtraValue": 10,
    "api/certificates/v1beta1.ExtraValue": 10,
    "apimachinery/pkg/apis/meta/v1.Verbs": 10,
}

# Go package path -> k8s-pb module path.
GO_PKG_PREFIXES = [
    ("k8s.io/api/", "api/"),
    ("k8s.io/apimachinery/", "apimachinery/"),
    ("k8s.io/apiextensions-apiserver/", "apiextensions_apiserver/"),
    ("k8s.io/kube-aggregator/", "kube_aggregator/"),
]

VALUE_KINDS = {"string": 0, "bool": 1, "int32": 2, "int64": 3, "double": 4, "bytes": 5, "message": 6}
VK_NAMES = ["STR", "BOOL", "I32", "I64", "F64", "BYTES", "MSG"]


def crate_dir(name):
    dirs = sorted(glob.glob(os.path.join(HOME, ".cargo/registry/src/*/%s-[0-9]*" % name)))
    if not dirs:
        sys.exit("no %s crate under ~/.cargo/registry/src (run cargo fetch)" % name)
    return dirs[-1]


# ---------------------------------------------------------------- k8s-pb


class PbField:
    def __init__(self, tag, rust, vkind, card, msg):
        self.tag = tag
        self.rust = rust  # rust field name without r#
        self.vkind = vkind  # key of VALUE_KINDS
        self.card = card  # "one" | "rep" | "map"
        self.msg = msg  # "module.Name" for message values


def resolve_type(module, path):
    path = path.strip()
    if path.startswith("crate::"):
        return path[len("crate::"):].replace("::", "/").rsplit("/", 1)
    parts = module.split("/")
    segs = path.split("::")
    while segs and segs[0] == "super":
        parts.pop()
        segs.pop(0)
    full = parts + segs
    return "/".join(full[:-1]), full[-1]


def strip_wrappers(ty):
    ty = ty.replace(" ", "").replace("\n", "").replace(",>", ">")
    for w in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        while ty.startswith(w):
            ty = ty[len(w):-1]
    m = re.match(r"::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,(.*)>$", ty)
    if m:
        ty = m.group(1)
    return ty


def parse_pb(root):
    messages = {}  # "module.Name" -> [PbField]
    resources = {}  # module -> api_version
    for path in sorted(glob.glob(os.path.join(root, "src/**/mod.rs"), recursive=True)):
        module = os.path.relpath(os.path.dirname(path), os.path.join(root, "src"))
        text = open(path, encoding="utf-8").read()
        lines = text.split("\n")
        i = 0
        cur = None
        while i < len(lines):
            line = lines[i]
            m = re.match(r"pub struct (\w+) \{(\})?$", line)
            if m:
                messages[module + "." + m.group(1)] = []
                cur = None if m.group(2) else module + "." + m.group(1)
                i += 1
                continue
            if line == "}":
                cur = None
            m = re.match(r"\s*#\[prost\((.*)\)\]$", line)
            if m and cur:
                attr = m.group(1)
                # field declaration (may span lines)
                j = i + 1
                decl = lines[j]
                while not decl.rstrip().endswith(",") or decl.count("<") != decl.count(">"):
                    j += 1
                    decl += lines[j].strip()
                dm = re.match(r"\s*pub (?:r#)?(\w+):\s*(.*),$", decl)
                if not dm:
                    sys.exit("cannot parse field in %s: %r" % (path, decl))
                rust, ty = dm.group(1), dm.group(2)
                tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
                mm = re.match(r'btree_map = "string, (\w+)"', attr)
                if mm:
                    card, vkind = "map", mm.group(1)
                else:
                    vkind = re.match(r"(\w+)", attr).group(1)
                    card = "rep" if "repeated" in attr else "one"
                if vkind not in VALUE_KINDS:
                    sys.exit("unknown prost kind %r in %s" % (attr, path))
                msg = None
                if vkind == "message":
                    mod2, name2 = resolve_type(module, strip_wrappers(ty))
                    msg = mod2 + "." + name2
                messages[cur].append(PbField(tag, rust, vkind, card, msg))
                i = j + 1
                continue
            m = re.match(r'\s*const API_VERSION: &\'static str = "([^"]*)";', line)
            if m:
                resources[module] = m.group(1)
            i += 1
    return messages, resources


# ---------------------------------------------------------- k8s-openapi


def norm(name):
    return name.replace("r#", "").replace("_", "").lower()


def parse_openapi(root):
    """-> {"module.Name": {rust_field: (json_name, required)}}, {module: api_version}"""
    out = {}
    versions = {}
    vdirs = sorted(
        (d for d in glob.glob(os.path.join(root, "src/v1_*")) if os.path.isdir(d)),
        key=lambda d: int(d.rsplit("_", 1)[1]),
    )
    vdirs = [d for d in vdirs if int(d.rsplit("_", 1)[1]) >= 33]
    for vdir in vdirs:
        for path in sorted(glob.glob(os.path.join(vdir, "**/*.rs"), recursive=True)):
            if os.path.basename(path) == "mod.rs":
                continue
            module = os.path.relpath(os.path.dirname(path), vdir)
            text = open(path, encoding="utf-8").read()
            m = re.search(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.S | re.M)
            if not m:
                continue
            key = module + "." + m.group(1)
            av = re.search(r'const API_VERSION: &\'static str = "([^"]*)";', text)
            if av:
                versions.setdefault(module, av.group(1))
            fields = {}
            for fm in re.finditer(r"^    pub (\w+): (.*),$", m.group(2), re.M):
                fields[fm.group(1)] = not fm.group(2).startswith("Option<")
            names = {}
            for nm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
                names[nm.group(2)] = nm.group(1)
            info = {}
            for rust, required in fields.items():
                if rust in names:
                    info[rust] = (names[rust], required)
            for rust, v in out.get(key, {}).items():  # older versions first
                info[rust] = v
            out[key] = info
    return out, versions, [os.path.basename(d) for d in vdirs]


# ------------------------------------------------------- Go type descriptors

GO_KINDS = {1: "bool", 2: "int", 5: "int32", 6: "int64", 14: "float64", 17: "array", 21: "map", 22: "ptr", 23: "slice", 24: "string", 25: "struct"}


class GoField:
    def __init__(self, order, name, json, omitempty, inline, kind, tag=""):
        self.order = order  # position in the Go struct
        self.tag = tag  # the whole struct tag (patch strategy: gen-patch-meta.py)
        self.name = name
        self.json = json
        self.omitempty = omitempty
        self.inline = inline
        self.kind = kind


def parse_go_binary(path):
    """-> {"module.Name": {proto_tag: GoField}}, version string"""
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}, None
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = []
    for i in range(shnum):
        name, typ, flags, addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        secs.append((name, addr, off, size))
    stroff = secs[shstrndx][2]
    ro = None
    for name, addr, off, size in secs:
        n = data[stroff + name: data.index(b"\0", stroff + name)]
        if n == b".rodata":
            ro = (addr, off, size)
    if ro is None:
        return {}, None
    ro_addr, ro_off, ro_size = ro
    rodata = data[ro_off: ro_off + ro_size]

    def varint(p):
        v = sh = 0
        while True:
            b = rodata[p]
            p += 1
            v |= (b & 0x7F) << sh
            sh += 7
            if b < 0x80:
                return v, p

    def name_at(addr):
        p = addr - ro_addr
        flags = rodata[p]
        n, p = varint(p + 1)
        name = rodata[p: p + n].decode("latin1")
        p += n
        tag = ""
        if flags & 2:
            t, p = varint(p)
            tag = rodata[p: p + t].decode("latin1")
        return name, tag

    def u64(addr):
        return struct.unpack_from("<Q", rodata, addr - ro_addr)[0]

    # struct field names with a json tag (protobuf-tagged fields, and
    # embedded `json:",inline"` ones such as TypeMeta)
    names = {}
    for m in re.finditer(rb'json:"', rodata):
        p = m.start()
        for s in range(max(0, p - 130), p - 2):
            fl = rodata[s]
            if fl & ~0x0F or not fl & 2:
                continue
            n, q = varint(s + 1)
            if q + n >= p:
                continue
            t, q2 = varint(q + n)
            if q2 != p:
                continue
            nm = rodata[q: q + n]
            if re.fullmatch(rb"[A-Za-z_]\w*", nm):
                names[ro_addr + s] = True
                break
    nwords = len(rodata) // 8
    words = struct.unpack_from("<%dQ" % nwords, rodata)
    field_addrs = {ro_addr + 8 * i for i, w in enumerate(words) if w in names}
    out = {}
    for j, w in enumerate(words):
        if w not in field_addrs or j + 2 >= nwords:
            continue
        n = words[j + 1]
        if n != words[j + 2] or not 0 < n < 400:
            continue
        st = ro_addr + 8 * j - 56  # abi.StructType: Type(48) PkgPath(8) Fields
        if st < ro_addr or rodata[st - ro_addr + 23] & 31 != 25:
            continue
        tflag = rodata[st - ro_addr + 20]
        if not tflag & 1:  # no uncommon type: not a named type
            continue
        tname = name_at(ro_addr + struct.unpack_from("<i", rodata, st - ro_addr + 40)[0])[0]
        if tflag & 2:
            tname = tname[1:]
        pkg = name_at(ro_addr + struct.unpack_from("<i", rodata, st - ro_addr + 80)[0])[0]
        module = None
        for gp, mp in GO_PKG_PREFIXES:
            if pkg.startswith(gp):
                module = mp + pkg[len(gp):]
        if module is None:
            continue
        fields = {}
        for k in range(n):
            fa = w + 24 * k
            fname, tag = name_at(u64(fa))
            kind = GO_KINDS.get(rodata[u64(fa + 8) - ro_addr + 23] & 31, "other")
            pm = re.search(r'protobuf:"[a-z0-9]+,(\d+),', tag)
            jm = re.search(r'json:"([^"]*)"', tag)
            if not pm or not jm:
                continue
            jparts = jm.group(1).split(",")
            fields[int(pm.group(1))] = GoField(
                k,
                fname, jparts[0] or fname, "omitempty" in jparts[1:], "inline" in jparts[1:], kind, tag
            )
        out[module + "." + tname.split(".", 1)[1]] = fields
    ver = None
    m = re.search(rb"\tk8s\.io/(?:kubernetes|api|apiextensions-apiserver)\t(v[0-9][^\t\n]*)", data)
    if m:
        ver = m.group(1).decode()
    return out, ver


def default_go_binaries():
    """The newest versioned kubectl next to the `kubectl` on PATH (or in the
    Cloud SDK), then anthoscli, which links apiextensions types."""
    found = []
    dirs = ["/usr/lib/google-cloud-sdk/bin"]
    k = shutil.which("kubectl")
    if k:
        dirs.insert(0, os.path.dirname(os.path.realpath(k)))
    kubectls = sorted(set(p for d in dirs for p in glob.glob(os.path.join(d, "kubectl.1.*"))))
    kubectls.sort(key=lambda p: [int(x) for x in p.rsplit("kubectl.", 1)[1].split(".")], reverse=True)
    found += kubectls[:1]
    found += [p for p in (os.path.join(d, "anthoscli") for d in dirs) if os.path.exists(p)][:1]
    return found


# ------------------------------------------------------------------ main


def short_name(key):
    """api/core/v1.Pod -> core.v1.Pod; apimachinery/pkg/apis/meta/v1.Time -> meta.v1.Time"""
    module, name = key.rsplit(".", 1)
    for prefix in ("api/", "apimachinery/pkg/apis/", "apimachinery/pkg/util/", "apimachinery/pkg/api/", "apimachinery/pkg/"):
        if module.startswith(prefix):
            module = module[len(prefix):]
            break
    module = re.sub(r"^\w+/pkg/apis/", "", module)
    return module.replace("/", ".") + "." + name


def lower_camel(rust):
    parts = rust.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--go-binary", action="append", help="Go binary to read type info from (repeatable)")
    ap.add_argument("-o", "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src/apiserver/protobuf/schema.rs"))
    ap.add_argument("--report", action="store_true", help="print guessed/mismatched fields")
    args = ap.parse_args()

    pb_root = crate_dir("k8s-pb")
    oa_root = crate_dir("k8s-openapi")
    messages, pb_versions = parse_pb(pb_root)
    openapi, oa_versions, oa_dirs = parse_openapi(oa_root)
    go_bins = args.go_binary if args.go_binary is not None else default_go_binaries()
    if not go_bins:
        print("warning: no Go binary with API types found; presence rules fall back to heuristics", file=sys.stderr)
    go = {}
    go_desc = []
    for b in go_bins:
        info, ver = parse_go_binary(b)
        go_desc.append("%s (%s, %d structs)" % (os.path.basename(b), ver or "?", len(info)))
        for k, v in info.items():
            go.setdefault(k, v)

    # k8s-pb renames some messages (HttpGetAction for HTTPGetAction); join
    # on the case-folded name and take the upstream spelling from Go or
    # k8s-openapi.
    def fold(d):
        return {k.rsplit(".", 1)[0] + "." + k.rsplit(".", 1)[1].lower(): (k, v) for k, v in d.items()}

    go_f, oa_f = fold(go), fold(openapi)
    canon = {}
    for key in list(messages):
        fk = key.rsplit(".", 1)[0] + "." + key.rsplit(".", 1)[1].lower()
        src = go_f.get(fk) or oa_f.get(fk)
        canon[key] = src[0] if src else key
    messages = {canon[k]: v for k, v in messages.items()}
    special_f = {k.lower(): v for k, v in SPECIAL.items()}

    def special_of(key):
        return special_f.get(key.lower(), 0)

    for fs in messages.values():
        for f in fs:
            if f.msg:
                f.msg = canon[f.msg]

    api_versions = dict(oa_versions)
    for k, v in pb_versions.items():
        api_versions.setdefault(k, v)

    def api_version_of(module):
        d, ver = module.rsplit("/", 1)
        if d in GROUP_BY_DIR:
            g = GROUP_BY_DIR[d]
            return ver if not g else g + "/" + ver
        return api_versions.get(module)

    # served packages: those k8s-openapi (1.33+) knows, plus meta/v1
    served = set(m.rsplit(".", 1)[0] for m in openapi) | {"apimachinery/pkg/apis/meta/v1"}

    def included(module):
        return module in served and not module.startswith(EXCLUDE_PREFIXES) and re.search(r"/v\d", module)

    kinds = []  # (apiVersion, kind, key)
    for key, fields in messages.items():
        module, name = key.rsplit(".", 1)
        if not included(module):
            continue
        is_kind = any(
            f.rust == "metadata" and f.msg in ("apimachinery/pkg/apis/meta/v1.ObjectMeta", "apimachinery/pkg/apis/meta/v1.ListMeta")
            for f in fields
        ) or name in EXTRA_KINDS.get(module, [])
        if name.endswith("TemplateSpec") or name == "PersistentVolumeClaimTemplate":
            is_kind = False
        if not is_kind:
            continue
        av = api_version_of(module)
        if av is None:
            sys.exit("no apiVersion known for package %s" % module)
        kinds.append((av, name, key))
    # unversioned meta kinds
    kinds.append(("v1", "Status", "apimachinery/pkg/apis/meta/v1.Status"))

    # closure of reachable messages
    order = []
    seen = set()
    stack = sorted(set(k for _, _, k in kinds)) + ["apimachinery/pkg/apis/meta/v1." + k for k in META_OPTION_KINDS]
    while stack:
        k = stack.pop(0)
        if k in seen:
            continue
        seen.add(k)
        order.append(k)
        if k not in messages:
            sys.exit("message %s not found in k8s-pb" % k)
        if special_of(k) in (1, 2, 3, 4, 5, 6, 10):
            continue
        for f in messages[k]:
            if f.msg and f.msg not in seen:
                stack.append(f.msg)
    order.sort()
    index = {k: i for i, k in enumerate(order)}

    # same message in sibling versions of the group, for Go info fallback
    def go_info(key):
        if key in go:
            return go[key], False
        module, name = key.rsplit(".", 1)
        group_dir = module.rsplit("/", 1)[0]
        cands = sorted(k for k in go if k.rsplit(".", 1)[1] == name and k.rsplit(".", 1)[0].rsplit("/", 1)[0] == group_dir)
        if cands:
            return go[cands[-1]], True
        return None, False

    kind_keys = set(k for _, _, k in kinds)
    guessed = []
    mismatched = []
    no_go = []
    borrowed = []
    out_msgs = []
    for key in order:
        module, name = key.rsplit(".", 1)
        spec = special_of(key)
        oa = openapi.get(key, {})
        oa_norm = {norm(r): v for r, v in oa.items()}
        gi, from_sibling = go_info(key)
        if from_sibling:
            borrowed.append(key)
        fields = []
        # Go's JSON encoder writes fields in struct order: follow it where known
        def order_key(f):
            g = gi.get(f.tag) if gi else None
            return (0, g.order) if g is not None else (1, f.tag)

        for f in sorted(messages[key], key=order_key):
            o = oa.get(f.rust) or oa_norm.get(norm(f.rust))
            g = gi.get(f.tag) if gi else None
            if g is not None and from_sibling and o is not None and g.json != o[0]:
                g = None
            inline = False
            if g is not None:
                json = g.json
                inline = g.inline
                if o is not None and o[0] != json and not inline:
                    mismatched.append("%s.%s: k8s-openapi %r, Go %r" % (key, f.rust, o[0], json))
            elif o is not None:
                json = o[0]
            else:
                json = lower_camel(f.rust)
                if not spec:
                    guessed.append("%s.%s -> %s" % (key, f.rust, json))
            # presence rule: 0 emit if present, 1 omit zero (Z), 2 always (A),
            # 3 inline (IN); see src/apiserver/protobuf/table.rs
            if spec:
                pres = 0  # special messages read their fields themselves
            elif g is not None:
                if inline:
                    pres = 3
                elif g.kind == "ptr":
                    pres = 0
                elif g.kind == "struct":
                    pres = 2  # encoding/json never omits a struct value
                else:
                    pres = 1 if g.omitempty else 2
            else:
                # no Go information: optional scalars and lists are taken as
                # omitempty values, required ones and messages as pointers
                no_go.append("%s.%s" % (key, json))
                if f.card != "one":
                    pres = 1
                elif key in kind_keys and json in ("metadata", "spec", "status") and f.vkind == "message":
                    pres = 2  # API convention: a kind's metadata/spec/status are values
                elif (o is not None and o[1]) or f.vkind == "message":
                    pres = 0
                else:
                    pres = 1
            fields.append((f, json, pres))
        out_msgs.append((key, spec, fields))

    # Absent "always" (non-pointer struct) fields are filled with their zero
    # value, recursively: that graph must be acyclic.
    always = {key: [f.msg for f, _, pres in fields if pres in (2, 3) and f.msg and f.card == "one"] for key, _, fields in out_msgs}
    state = {}

    def visit(k, path):
        if state.get(k) == 1:
            sys.exit("cycle of non-pointer message fields: %s" % " -> ".join(path + [k]))
        if state.get(k) == 2:
            return
        state[k] = 1
        for c in always.get(k, []):
            visit(c, path + [k])
        state[k] = 2

    for k in always:
        visit(k, [])

    # ---- emit
    lines = []
    w = lines.append
    pb_ver = os.path.basename(pb_root)
    oa_ver = os.path.basename(oa_root)
    w("// @generated by scripts/gen-protobuf-schema.py -- DO NOT EDIT.")
    w("//")
    w("// Kubernetes protobuf schema as data for the decoder in mod.rs. Sources:")
    w("// field tags, wire types and message types from %s; JSON names and" % pb_ver)
    w("// required-ness from %s (%s); Go pointer/omitempty/inline" % (oa_ver, ", ".join(oa_dirs)))
    w("// semantics from the type descriptors of: %s." % "; ".join(go_desc))
    w("//")
    w("// M(name, special, fields); F(tag, json, flags, message index).")
    w("use super::table::*;")
    w("")
    w("pub static MESSAGES: &[M] = &[")
    for i, (key, spec, fields) in enumerate(out_msgs):
        module, name = key.rsplit(".", 1)
        pname = short_name(key)
        fs = []
        for f, json, pres in fields:
            flags = [VK_NAMES[VALUE_KINDS[f.vkind]]]
            if f.card == "rep":
                flags.append("REP")
            elif f.card == "map":
                flags.append("MAP")
            flags.append(["", "Z", "A", "IN"][pres])
            flags = [x for x in flags if x]
            fs.append('F(%d, "%s", %s, %d)' % (f.tag, json, "|".join(flags), index[f.msg] if f.msg else 0))
        body = ", ".join(fs)
        w('    /* %d */ M("%s", %d, &[%s]),' % (i, pname, spec, body))
    w("];")
    w("")
    w("/// (apiVersion, kind, message index), sorted.")
    w("pub static KINDS: &[(&str, &str, u16)] = &[")
    for av, kind, key in sorted(set(kinds)):
        w('    ("%s", "%s", %d),' % (av, kind, index[key]))
    w("];")
    w("")
    w("/// meta/v1 kinds accepted in every group version.")
    w("pub static META_KINDS: &[(&str, u16)] = &[")
    for k in META_OPTION_KINDS:
        w('    ("%s", %d),' % (k, index["apimachinery/pkg/apis/meta/v1." + k]))
    w("];")
    text = "\n".join(lines) + "\n"
    out = os.path.normpath(args.out)
    with open(out, "w") as fh:
        fh.write(text)
    nf = sum(len(f) for _, _, f in out_msgs)
    print("wrote %s: %d messages, %d fields, %d kinds, %d bytes" % (out, len(out_msgs), nf, len(set(kinds)), len(text)))
    print("go info: " + "; ".join(go_desc))
    if args.report:
        print("\n# JSON names guessed (lowerCamelCase):")
        print("\n".join(guessed) or "(none)")
        print("\n# k8s-openapi vs Go json name mismatches (Go wins):")
        print("\n".join(mismatched) or "(none)")
        print("\n# Go info borrowed from a sibling version:")
        print("\n".join(borrowed) or "(none)")
        print("\n# fields without Go info (heuristic presence):")
        print("\n".join(no_go) or "(none)")


if __name__ == "__main__":
    main()
