"""OpenCL C of the random rows (symgraph/scalar.py, symgraph/rng/draws.py): Philox4x64-10 with the
key and counter passed by value, and the distributions computed per element exactly as numpy
computes them (``#pragma OPENCL FP_CONTRACT OFF``: no fused multiply-adds, so + - * / and sqrt
round as numpy's do).

A random step in a kernel needs the element's flat index in the step's output (``ix``):

- in the vector path a work-item runs ``GROUP`` (64) aligned elements as four 16-wide
  sub-vectors. Each draw (uniform, normal, Bernoulli) is computed once per group by
  ``sg_<row>_x64``: eight (32-bit draws) or sixteen (64-bit draws) Philox blocks at once in
  ``ulong8`` lanes, the 64x64->128 products decomposed into 32x32->64 ones (``vpmuludq``: pocl
  neither vectorises the scalar Philox across work-items nor has a vector ``mul_hi(ulong)``),
  then mapped to the distribution on whole vectors and transposed into the elements' order;
- elsewhere each work-item runs 16 consecutive elements and keeps the last block of each random
  step (``blk``/``bid``): a block is computed once for the 8 (or 4) elements it serves.

The ops that are not elementwise (Blank, permutations, choices, key derivation) run on the host
with numpy, as explicit host steps of ``f.source`` (their results move with a visible transfer).
"""
from __future__ import annotations

import functools

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.graph.basic import Apply
from symgraph.scalar import SCALAR_OPS
from symgraph.tensor.composite import Composite
from symgraph.tensor.random_ops import Blank, Choice, KeyFoldIn, KeySplit, Permutation

CHUNK = 16
"""Elements one work-item runs in a kernel with random steps (a multiple of 8: whole blocks)."""

PHILOX = r"""#pragma OPENCL FP_CONTRACT OFF
#define SG_ROUND { const ulong h0 = mul_hi(0xD2E7470EE14C6C93UL, x0), l0 = 0xD2E7470EE14C6C93UL * x0; \
    const ulong h1 = mul_hi(0xCA5A826395121157UL, x2), l1 = 0xCA5A826395121157UL * x2; \
    x0 = h1 ^ x1 ^ k0; x1 = l1; x2 = h0 ^ x3 ^ k1; x3 = l0; }
#define SG_BUMP { k0 += 0x9E3779B97F4A7C15UL; k1 += 0xBB67AE8584CAA73BUL; }
inline ulong4 sg_philox(ulong b, ulong k0, ulong k1, ulong c1, ulong c2, ulong c3) {
    ulong x0 = b, x1 = c1, x2 = c2, x3 = c3;
    SG_ROUND SG_BUMP SG_ROUND SG_BUMP SG_ROUND SG_BUMP SG_ROUND SG_BUMP SG_ROUND SG_BUMP
    SG_ROUND SG_BUMP SG_ROUND SG_BUMP SG_ROUND SG_BUMP SG_ROUND SG_BUMP SG_ROUND
    return (ulong4)(x0, x1, x2, x3);
}
inline ulong sg_lane64(ulong4 b, ulong ix) {
    const uint l = (uint)(ix & 3);
    return l == 0 ? b.x : l == 1 ? b.y : l == 2 ? b.z : b.w;
}
inline uint sg_lane32(ulong4 b, ulong ix) {
    const ulong w = sg_lane64(b, ix >> 1);
    return (ix & 1) ? (uint)(w >> 32) : (uint)w;
}
inline ulong sg_word64(ulong ix, ulong k0, ulong k1, ulong c1, ulong c2, ulong c3, uint sub) {
    return sg_lane64(sg_philox(ix >> 2, k0, k1, c1, (c2 & 0xFFFFFFFFUL) | ((ulong)sub << 32), c3), ix);
}
inline double sg_unit64(ulong w) { return (double)(w >> 11) * 0x1p-53; }
"""
PHILOX_X8 = r"""#define SG_INLINE inline __attribute__((always_inline))  /* pocl does not inline these otherwise */
#define SG_MULHILO8(a, m, hi, lo) { \
    const ulong8 al_ = (a) & 0xFFFFFFFFUL, ah_ = (a) >> 32; \
    const ulong8 ll_ = al_ * ((m) & 0xFFFFFFFFUL), hl_ = ah_ * ((m) & 0xFFFFFFFFUL); \
    const ulong8 lh_ = al_ * ((m) >> 32), hh_ = ah_ * ((m) >> 32); \
    const ulong8 t_ = hl_ + (ll_ >> 32), u_ = lh_ + (t_ & 0xFFFFFFFFUL); \
    hi = hh_ + (t_ >> 32) + (u_ >> 32); lo = (u_ << 32) | (ll_ & 0xFFFFFFFFUL); }
#define SG_ROUND8 { ulong8 h0, l0, h1, l1; \
    SG_MULHILO8(x0, 0xD2E7470EE14C6C93UL, h0, l0) SG_MULHILO8(x2, 0xCA5A826395121157UL, h1, l1) \
    x0 = h1 ^ x1 ^ k0; x1 = l1; x2 = h0 ^ x3 ^ k1; x3 = l0; }
/* the Philox blocks b .. b+7, one per lane; w[q] is word q of each. Only word 0 differs between
   the lanes at first: the products of the words equal in every lane (round 1's of c2, round 2's
   of the new word 0) are scalars, so 18 products of 20 are vectors. */
SG_INLINE void sg_philox_x8(ulong b, ulong k0, ulong k1, ulong c1, ulong c2, ulong c3, ulong8 *w) {
    ulong8 x0, x1, x2, x3, h, l;
    SG_MULHILO8((ulong8)(b) + (ulong8)(0, 1, 2, 3, 4, 5, 6, 7), 0xD2E7470EE14C6C93UL, h, l)
    const ulong s0 = mul_hi(0xCA5A826395121157UL, c2) ^ c1 ^ k0, s1 = 0xCA5A826395121157UL * c2;
    x2 = h ^ c3 ^ k1; x3 = l;
    SG_BUMP
    SG_MULHILO8(x2, 0xCA5A826395121157UL, h, l)
    x0 = h ^ s1 ^ k0; x1 = l; x2 = mul_hi(0xD2E7470EE14C6C93UL, s0) ^ x3 ^ k1; x3 = (ulong8)(0xD2E7470EE14C6C93UL * s0);
    SG_BUMP SG_ROUND8 SG_BUMP SG_ROUND8 SG_BUMP SG_ROUND8 SG_BUMP
    SG_ROUND8 SG_BUMP SG_ROUND8 SG_BUMP SG_ROUND8 SG_BUMP SG_ROUND8 SG_BUMP SG_ROUND8
    w[0] = x0; w[1] = x1; w[2] = x2; w[3] = x3;
}
/* 64-bit lanes from word order (a[q] lane j: word q of block j) to element order (o[0]: blocks 0, 1, ...) */
SG_INLINE void sg_blocks_to_elements(const ulong8 *a, ulong8 *o) {
    const ulong16 m = (ulong16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    const ulong16 p = shuffle2(a[0], a[1], m), t = shuffle2(a[2], a[3], m);
    const ulong16 lo = shuffle2(p, t, (ulong16)(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23));
    const ulong16 hi = shuffle2(p, t, (ulong16)(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
    o[0] = lo.lo; o[1] = lo.hi; o[2] = hi.lo; o[3] = hi.hi;
}
"""
_GROUP_HEAD = "SG_INLINE void {name}(ulong ix, ulong k0, ulong k1, ulong c1, ulong c2, ulong c3, {t}16 *r) {{\n"
GROUP_HELPERS = {  # helper -> body: the 64 values from element ix (a multiple of 64); r[s]: elements ix + 16 s ..
    "sg_uniform32_x64": """    ulong8 w[4], f[4], o[4];
    sg_philox_x8(ix >> 3, k0, k1, c1, c2, c3, w);
    for (int q = 0; q < 4; q++) f[q] = as_ulong8(convert_float16(as_uint16(w[q]) >> 8) * 0x1p-24f);
    sg_blocks_to_elements(f, o);
    for (int q = 0; q < 4; q++) r[q] = as_float16(o[q]);""",
    "sg_uniform64_x64": """    for (int h = 0; h < 2; h++) {
        ulong8 w[4], f[4], o[4];
        sg_philox_x8((ix >> 2) + 8 * h, k0, k1, c1, c2, c3, w);
        for (int q = 0; q < 4; q++) f[q] = as_ulong8(convert_double8(w[q] >> 11) * 0x1p-53);
        sg_blocks_to_elements(f, o);
        r[2 * h] = (double16)(as_double8(o[0]), as_double8(o[1]));
        r[2 * h + 1] = (double16)(as_double8(o[2]), as_double8(o[3]));
    }""",
    # a word's low half gives u1, its high half u2: the word's two elements are r cos t, r sin t
    "sg_normal32_x64": """    ulong8 w[4], f[4], o[4];
    sg_philox_x8(ix >> 3, k0, k1, c1, c2, c3, w);
    for (int q = 0; q < 4; q++) {
        const double8 u1 = (convert_double8(convert_uint8(w[q] & 0xFFFFFFFFUL) >> 8) + 1.0) * 0x1p-24;
        const double8 u2 = convert_double8(convert_uint8(w[q] >> 32) >> 8) * 0x1p-24;
        const double8 rr = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
        float16 z;
        z.even = convert_float8(rr * cos(t));
        z.odd = convert_float8(rr * sin(t));
        f[q] = as_ulong8(z);
    }
    sg_blocks_to_elements(f, o);
    for (int q = 0; q < 4; q++) r[q] = as_float16(o[q]);""",
    # words 0, 1 of a block give its elements 0 (cos) and 1 (sin); words 2, 3 its elements 2 and 3
    "sg_normal64_x64": """    for (int h = 0; h < 2; h++) {
        ulong8 w[4], f[4], o[4];
        sg_philox_x8((ix >> 2) + 8 * h, k0, k1, c1, c2, c3, w);
        for (int q = 0; q < 4; q += 2) {
            const double8 u1 = (convert_double8(w[q] >> 11) + 1.0) * 0x1p-53;
            const double8 u2 = convert_double8(w[q + 1] >> 11) * 0x1p-53;
            const double8 rr = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
            f[q] = as_ulong8(rr * cos(t));
            f[q + 1] = as_ulong8(rr * sin(t));
        }
        sg_blocks_to_elements(f, o);
        r[2 * h] = (double16)(as_double8(o[0]), as_double8(o[1]));
        r[2 * h + 1] = (double16)(as_double8(o[2]), as_double8(o[3]));
    }""",
}
GROUP = 64
"""Elements a work-item of the vector path runs (four 16-wide sub-vectors; whole blocks of 8 or 4)."""
SUBVECTORS = 4
GROUPED = {"sg_uniform32": ("sg_uniform32_x64", "float", "r{j}[s]"),
           "sg_bernoulli32": ("sg_uniform32_x64", "float", "select((float16)(0.0f), (float16)(1.0f), r{j}[s] < {p})"),
           "sg_uniform64": ("sg_uniform64_x64", "double", "r{j}[s]"),
           "sg_bernoulli64": ("sg_uniform64_x64", "double", "select((double16)(0.0), (double16)(1.0), r{j}[s] < {p})"),
           "sg_normal32": ("sg_normal32_x64", "float", "r{j}[s]"),
           "sg_normal64": ("sg_normal64_x64", "double", "r{j}[s]")}
"""Rows of the vector path, each computed once per group: row stem -> (group helper, element C type,
a sub-vector's value)."""
_ARGS = "ulong4 blk, ulong ix, ulong k0, ulong k1, ulong c1, ulong c2, ulong c3"
_VARGS = "ulong ix, ulong k0, ulong k1, ulong c1, ulong c2, ulong c3"
_KEYS = "k0, k1, c1, c2, c3"

SCALAR = {  # row stem -> (C return type, parameter declarations, body) of the one-element helper
    "sg_bits32": ("uint", "", "return sg_lane32(blk, ix);"),
    "sg_bits64": ("ulong", "", "return sg_lane64(blk, ix);"),
    "sg_uniform32": ("float", "", "return (float)(sg_lane32(blk, ix) >> 8) * 0x1p-24f;"),
    "sg_uniform64": ("double", "", "return sg_unit64(sg_lane64(blk, ix));"),
    "sg_normal32": ("float", "", """const ulong w = sg_lane64(blk, ix >> 1);
    const double u1 = ((double)((uint)w >> 8) + 1.0) * 0x1p-24, u2 = (double)((uint)(w >> 32) >> 8) * 0x1p-24;
    const double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
    return (float)(r * ((ix & 1) ? sin(t) : cos(t)));"""),
    "sg_normal64": ("double", "", """const ulong q = (ix >> 1) << 1;
    const double u1 = ((double)(sg_lane64(blk, q) >> 11) + 1.0) * 0x1p-53, u2 = sg_unit64(sg_lane64(blk, q + 1));
    const double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
    return r * ((ix & 1) ? sin(t) : cos(t));"""),
    "sg_bernoulli32": ("float", ", float p", "return (float)(sg_lane32(blk, ix) >> 8) * 0x1p-24f < p ? 1.0f : 0.0f;"),
    "sg_bernoulli64": ("double", ", double p", "return sg_unit64(sg_lane64(blk, ix)) < p ? 1.0 : 0.0;"),
    "sg_integers": ("long", ", long lo, long hi", f"""if (hi <= lo) return lo;
    const ulong r = (ulong)hi - (ulong)lo;
    ulong w = sg_lane64(blk, ix), l = w * r;
    if (l < r) {{
        const ulong t = (0UL - r) % r;
        for (uint sub = 1; l < t; sub++) {{ w = sg_word64(ix, {_KEYS}, sub); l = w * r; }}
    }}
    return (long)((ulong)lo + mul_hi(w, r));"""),
}

def _binomial_source() -> str:
    """The binomial helper: inversion for n p' < 10, else BTRS (symgraph/rng/binomial.py)."""
    return f"""inline double sg_powi(double x, long n) {{
    double r = 1.0;
    while (n) {{ if (n & 1) r *= x; x *= x; n >>= 1; }}
    return r;
}}
inline long sg_binomial_core(ulong4 blk, {_VARGS}, long n, double p) {{
    const double nf = (double)n, q = 1.0 - p;
    if (nf * p < 10.0) {{
        const double s = p / q, a = (nf + 1.0) * s, r0 = sg_powi(q, n);
        const double bound = fmin(nf, floor(nf * p + 10.0 * sqrt(nf * p * q + 1.0)));
        for (uint t = 0;; t++) {{
            double u = sg_unit64(t ? sg_word64(ix, {_KEYS}, t) : sg_lane64(blk, ix)), r = r0;
            long k = 0;
            int restart = 0;
            while (u > r) {{
                u -= r; k++;
                if ((double)k > bound) {{ restart = 1; break; }}
                r *= a / (double)k - s;
            }}
            if (!restart) return k;
        }}
    }}
    const double spq = sqrt(nf * p * q), b = 1.15 + 2.53 * spq, a = -0.0873 + 0.0248 * b + 0.01 * p;
    const double c = nf * p + 0.5, vr = 0.92 - 4.2 / b, alpha = (2.83 + 5.1 / b) * spq, lpq = log(p / q);
    const double m = floor((nf + 1.0) * p), h = lgamma(m + 1.0) + lgamma(nf - m + 1.0);
    for (uint t = 0;; t++) {{
        const double u = sg_unit64(t ? sg_word64(ix, {_KEYS}, 2 * t) : sg_lane64(blk, ix)) - 0.5;
        const double v = sg_unit64(sg_word64(ix, {_KEYS}, 2 * t + 1)), us = 0.5 - fabs(u);
        const double kf = floor((2.0 * a / us + b) * u + c);
        if (!(kf >= 0.0 && kf <= nf)) continue;
        if (us >= 0.07 && v <= vr) return (long)kf;
        const double bound = h - lgamma(kf + 1.0) - lgamma(nf - kf + 1.0) + (kf - m) * lpq;
        if (log(v * alpha / (a / (us * us) + b)) <= bound) return (long)kf;
    }}
}}
inline long sg_binomial({_ARGS}, long n, double p) {{
    if (n < 0 || !(p >= 0.0 && p <= 1.0)) return -1;
    if (n == 0 || p == 0.0 || p == 1.0) return p == 1.0 ? n : 0;
    return p > 0.5 ? n - sg_binomial_core(blk, ix, {_KEYS}, n, 1.0 - p) : sg_binomial_core(blk, ix, {_KEYS}, n, p);
}}
"""


def helper_source(names: set[str]) -> str:
    """The C of the random helpers ``names`` (and of Philox), in dependency order; '' for none."""
    if not names:
        return ""
    parts = [PHILOX]
    for stem in sorted(n for n in names if n in SCALAR):
        ret, params, body = SCALAR[stem]
        parts.append(f"inline {ret} {stem}({_ARGS}{params}) {{\n    {body}\n}}")
    if "sg_binomial" in names:
        parts.append(_binomial_source())
    groups = sorted(n for n in names if n in GROUP_HELPERS)
    if groups:
        parts.append(PHILOX_X8)
    for name in groups:
        t = "float" if "32" in name else "double"
        parts.append(_GROUP_HEAD.format(name=name, t=t) + GROUP_HELPERS[name] + "\n}")
    return "\n".join(parts) + "\n"


# --- what a program's inputs are for --------------------------------------------------------------

def input_roles(prog: Composite) -> list[str]:
    """For each input of ``prog``: 'shape' (read only as argument 0 of random steps: the kernel needs
    only its shape), 'word' (read only as a key/counter argument of random steps: a scalar, even in
    the vector path) or 'value'."""
    return list(_input_roles(prog))


@functools.lru_cache(maxsize=256)
def _input_roles(prog: Composite) -> tuple[str, ...]:
    """``input_roles``, once per program (a long program's walk takes milliseconds; lowering asks
    several times)."""
    uses: list[set[str]] = [set() for _ in prog.in_dtypes]
    for name, args in prog.steps:
        rnd = SCALAR_OPS[name].is_random
        for pos, a in enumerate(args):
            if a[0] == "i":
                uses[a[1]].add("shape" if rnd and pos == 0 else "word" if rnd and pos <= 5 else "value")
    for r in prog.outputs:
        if r[0] == "i":
            uses[r[1]].add("value")
    return tuple(u.pop() if len(u) == 1 else "value" for u in uses)


def random_steps(prog: Composite) -> list[int]:
    """The indices of the random steps of ``prog``."""
    return [j for j, (name, _) in enumerate(prog.steps) if SCALAR_OPS[name].is_random]


def cache_lines(prog: Composite) -> list[str]:
    """Declarations of each random step's block cache (before a work-item's element loop)."""
    return [f"ulong4 blk{j} = (ulong4)(0); ulong bid{j} = 0xFFFFFFFFFFFFFFFFUL;" for j in random_steps(prog)]


def group_lines(prog: Composite) -> list[str]:
    """Declarations of each random step's group of values (``r<j>``: four 16-wide sub-vectors),
    before the vector path's sub-vector loop."""
    return [f"{GROUPED[SCALAR_OPS[name].cl][1]}16 r{j}[{SUBVECTORS}];"
            for j, (name, _) in enumerate(prog.steps) if SCALAR_OPS[name].cl in GROUPED]


def step_lines(j: int, name: str, args: list[str], arg_dtypes: list, out_dtype: str, width: int,
               index: str) -> tuple[list[str], set[str]]:
    """Statements computing random step ``j`` (row ``name``) at element index ``index`` (C expression),
    and the helpers they need. With ``width`` 16 (the vector path), ``index`` is the first element
    of sub-vector ``s`` (0 .. 3, a C variable of the kernel) of a group of ``GROUP`` aligned
    elements: the step computes the whole group at ``s == 0`` into ``r<j>`` (``group_lines``)."""
    sop = SCALAR_OPS[name]
    words = [a if str(d) == "uint64" else f"(ulong){a}" for a, d in zip(args[1:6], arg_dtypes[1:6])]
    params = args[6:]
    ctype = ks.ctype(out_dtype)
    if width > 1:
        helper, _, value = GROUPED[sop.cl]
        first = f"(ulong)({index}) - {width} * s"
        return [f"if (s == 0) {helper}({first}, {', '.join(words)}, r{j});",
                f"const {ctype}{width} t{j} = {value.format(j=j, p=params[0] if params else '')};  /* {name} */"], \
            {helper}
    shift = sop.block_shift
    return [f"const ulong ix{j} = (ulong)({index});",
            f"if ((ix{j} >> {shift}) != bid{j}) {{ bid{j} = ix{j} >> {shift}; "
            f"blk{j} = sg_philox(bid{j}, {', '.join(words)}); }}",
            f"const {ctype} t{j} = {sop.cl}(blk{j}, ix{j}, {', '.join(words + params)});  /* {name} */"], {sop.cl}


def index_strides(shape: tuple) -> list[int]:
    """The flat-index strides of an array of ``shape`` (C order, in elements; 0 where the length is 1)."""
    out, acc = [], 1
    for n in reversed(shape):
        out.append(0 if n == 1 else acc)
        acc *= n
    return out[::-1]


# --- the ops that are not elementwise run on the host ----------------------------------------------

@lowers(Blank, Permutation, Choice, KeySplit, KeyFoldIn)
def lower_on_host(node: Apply, ctx: LowerContext) -> Lowered:
    """Run on the host with numpy (a shape carrier; sorting-based draws; key derivation)."""
    return Lowered(None, kind="host")
