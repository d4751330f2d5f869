"""An independent reimplementation of `paraminit-v1`, written against docs/determinism.md.

It covers a representative subset of the contract: the key expansion, ChaCha8, stream ids,
the uniform / normal / truncated-normal kernels (with ln, sincos_2pi and erfinv_factor in f32),
the plan-time exp / erfc in f64, fan rules, the plain, variance-scaling, kaiming and xavier
initializers, `auto`, identity / dirac / sparse, the dense / conv / embedding / norm /
recurrent / attention layers under every framework (names, stream roles, layouts, defaults),
raw tensors, `hf_config` (Llama, Mistral, Qwen2, GPT-2, BERT), `only` and `shard`, the
canonical request, the safetensors file (header and `paraminit.slices` included) and the JSON
response body. Everything in the
document is covered (the orthogonal QR with an exact fused multiply-add via `fractions`), but
not every validation rule: a request the service would reject may raise `Unsupported` or be
accepted here.

Only numpy (and the standard library's hashlib/struct/json/re) is used, and nothing here reads
the Rust sources: every rule is the document's, and where the document was not enough it was
fixed. (Caveat: the author had read the sources before; a reimplementation by someone who
never saw them would be a stronger check.)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct

import numpy as np

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
F32 = np.float32
U32 = np.uint32


class Unsupported(Exception):
    """The request uses a part of the contract this reimplementation does not cover."""


# --------------------------------------------------------------------------------------------
# Key and stream derivation


def key_from_seed(seed: int) -> list[int]:
    """`seed_from_u64`: eight PCG32 outputs, little-endian, as the eight key words."""
    state = seed
    out = []
    for _ in range(8):
        state = (state * 0x5851F42D4C957F2D + 0xA17654E46FBE17F3) & M64
        xorshifted = (((state >> 18) ^ state) >> 27) & M32
        rot = state >> 59
        out.append(((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & M32)
    return out  # 4 LE bytes each = one LE key word each


def stream_id(identity: str) -> int:
    h = hashlib.sha256(b"paraminit-v1 stream" + b"\x00" + identity.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little")


def _rotl(x, n):
    return (x << U32(n)) | (x >> U32(32 - n))


def chacha8_blocks(key: list[int], stream: int, first_block: int, count: int) -> np.ndarray:
    """Blocks first_block .. first_block+count-1, as a (count, 16) uint32 array."""
    c = np.arange(count, dtype=np.uint64) + np.uint64(first_block)
    init = [
        np.full(count, v, dtype=U32)
        for v in (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key)
    ]
    init.append((c & np.uint64(M32)).astype(U32))
    init.append((c >> np.uint64(32)).astype(U32))
    init.append(np.full(count, stream & M32, dtype=U32))
    init.append(np.full(count, stream >> 32, dtype=U32))
    x = [w.copy() for w in init]

    def qr(a, b, cc, d):
        x[a] += x[b]; x[d] ^= x[a]; x[d] = _rotl(x[d], 16)
        x[cc] += x[d]; x[b] ^= x[cc]; x[b] = _rotl(x[b], 12)
        x[a] += x[b]; x[d] ^= x[a]; x[d] = _rotl(x[d], 8)
        x[cc] += x[d]; x[b] ^= x[cc]; x[b] = _rotl(x[b], 7)

    with np.errstate(over="ignore"):
        for _ in range(4):
            qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
            qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
        out = np.stack([x[i] + init[i] for i in range(16)], axis=1)
    return out


def words(seed: int, stream: int, start: int, count: int) -> np.ndarray:
    """Words at positions start .. start+count-1 of (seed, stream)."""
    if count == 0:
        return np.zeros(0, dtype=U32)
    b0, b1 = start // 16, (start + count - 1) // 16
    blocks = chacha8_blocks(key_from_seed(seed), stream, b0, b1 - b0 + 1).reshape(-1)
    off = start - 16 * b0
    return blocks[off : off + count]


# --------------------------------------------------------------------------------------------
# f32 math functions


def f32_from_bits(u: int) -> F32:
    return np.array([u], dtype=U32).view(np.float32)[0]


TWO_POW_M24 = f32_from_bits(0x33800000)
SQRT_2_F32 = f32_from_bits(0x3FB504F3)
TRUNC_U_MIN = f32_from_bits(0x00800000)
TRUNC_U_MAX = f32_from_bits(0x3F7FFFFF)

LN2_HI, LN2_LO = f32_from_bits(0x3F317180), f32_from_bits(0x3717F7D1)
LG1, LG2, LG3, LG4 = (f32_from_bits(b) for b in (0x3F2AAAAA, 0x3ECCCE13, 0x3E91E9EE, 0x3E789E26))


def ln_f32(x: np.ndarray) -> np.ndarray:
    ix = x.view(U32) + U32(0x004AFB0D)
    k = (ix >> U32(23)).astype(np.int32) - np.int32(127)
    m = ((ix & U32(0x007FFFFF)) + U32(0x3F3504F3)).view(np.float32)
    f = m - F32(1.0)
    s = f / (F32(2.0) + f)
    z = s * s
    w = z * z
    t1 = w * (LG2 + w * LG4)
    t2 = z * (LG1 + w * LG3)
    r = t2 + t1
    hfsq = (F32(0.5) * f) * f
    dk = k.astype(np.float32)
    return ((((s * (hfsq + r)) + dk * LN2_LO) - hfsq) + f) + dk * LN2_HI


S1, S3, S5, S7, S9 = (f32_from_bits(b) for b in (0x3FC90FDB, 0xBF255DE7, 0x3DA335E3, 0xBB996966, 0x39283C1A))
C2, C4, C6, C8, C10 = (f32_from_bits(b) for b in (0xBF9DE9E6, 0x3E81E0F8, 0xBCAAE9E4, 0x3A70FA83, 0xB7D368F9))
ROUND_MAGIC = f32_from_bits(0x4B400000)


def sincos_2pi(t: np.ndarray):
    y = F32(4.0) * t
    yq = y + ROUND_MAGIC
    q = yq - ROUND_MAGIC
    quadrant = yq.view(U32) & U32(3)
    f = y - q
    f2 = f * f
    sp = f * (S1 + f2 * (S3 + f2 * (S5 + f2 * (S7 + f2 * S9))))
    cp = F32(1.0) + f2 * (C2 + f2 * (C4 + f2 * (C6 + f2 * (C8 + f2 * C10))))
    odd = (quadrant & U32(1)) == U32(1)
    s0 = np.where(odd, cp, sp).astype(np.float32)
    c0 = np.where(odd, sp, cp).astype(np.float32)
    sin = (s0.view(U32) ^ ((quadrant & U32(2)) << U32(30))).view(np.float32)
    cos = (c0.view(U32) ^ (((quadrant + U32(1)) & U32(2)) << U32(30))).view(np.float32)
    return sin, cos


CENTRAL = [f32_from_bits(b) for b in (0x32F16588, 0x34B84B36, 0xB66C7357, 0xB6935AC1, 0x396532DB,
                                      0xBAA45408, 0xBB88E4EF, 0x3E7C8F63, 0x3FC02E2F)]
TAIL = [f32_from_bits(b) for b in (0xB951F09B, 0x38D3B56B, 0x3AB0DC72, 0xBB70BDE7, 0x3BBC127B,
                                   0xBBF9C5D7, 0x3C1AA57E, 0x3F8036DB, 0x40354F7E)]


def erfinv_factor(w: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        wc = w - F32(2.5)
        pc = np.full_like(w, CENTRAL[0])
        for i in range(1, 9):
            pc = CENTRAL[i] + pc * wc
        wt = np.sqrt(w) - F32(3.0)
        pt = np.full_like(w, TAIL[0])
        for i in range(1, 9):
            pt = TAIL[i] + pt * wt
    return np.where(w < F32(5.0), pc, pt).astype(np.float32)


def u24(w: np.ndarray) -> np.ndarray:
    return (w >> U32(8)).astype(np.float32) * TWO_POW_M24


# --------------------------------------------------------------------------------------------
# Plan-time f64 functions: fdlibm exp and erfc exactly as the document spells them out


def _bits64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _from64(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def _hi(x: float) -> int:
    return _bits64(x) >> 32


EXP_C = {
    "LN2HI": 0x3FE62E42FEE00000, "LN2LO": 0x3DEA39EF35793C76, "INVLN2": 0x3FF71547652B82FE,
    "P1": 0x3FC555555555553E, "P2": 0xBF66C16C16BEBD93, "P3": 0x3F11566AAF25DE2C,
    "P4": 0xBEBBBD41C5D26BF1, "P5": 0x3E66376972BEA4D0,
}
E = {k: _from64(v) for k, v in EXP_C.items()}


def exp64(x: float) -> float:
    hx = _hi(x) & 0x7FFFFFFF
    sign = _hi(x) >> 31
    if hx >= 0x4086232B:
        if x != x:
            return x
        if x > 709.782712893383973096:
            return math.inf
        if x < -745.13321910194110842:
            return 0.0
    if hx > 0x3FD62E42:
        if hx >= 0x3FF0A2B2:
            k = int(E["INVLN2"] * x + (0.5 if sign == 0 else -0.5))  # trunc toward zero
        else:
            k = 1 - sign - sign
        hi = x - k * E["LN2HI"]
        lo = k * E["LN2LO"]
        x = hi - lo
    elif hx > 0x3E300000:
        k, hi, lo = 0, x, 0.0
    else:
        return 1.0 + x
    xx = x * x
    c = x - xx * (E["P1"] + xx * (E["P2"] + xx * (E["P3"] + xx * (E["P4"] + xx * E["P5"]))))
    y = 1.0 + (x * c / (2.0 - c) - lo + hi)
    return y if k == 0 else math.ldexp(y, k)


_ERF_HEX = """
ERX 3feb0ac160000000 PP0 3fc06eba8214db68 PP1 bfd4cd7d691cb913 PP2 bf9d2a51dbd7194f
PP3 bf77a291236668e4 PP4 bef8ead6120016ac QQ1 3fd97779cddadc09 QQ2 3fb0a54c5536ceba
QQ3 3f74d022c4d36b0f QQ4 3f215dc9221c1a10 QQ5 bed09c4342a26120 PA0 bf6359b8bef77538
PA1 3fda8d00ad92b34d PA2 bfd7d240fbb8c3f1 PA3 3fd45fca805120e4 PA4 bfbc63983d3e28ec
PA5 3fa22a36599795eb PA6 bf61bf380a96073f QA1 3fbb3e6618eee323 QA2 3fe14af092eb6f33
QA3 3fb2635cd99fe9a7 QA4 3fc02660e763351f QA5 3f8bedc26b51dd1c QA6 3f888b545735151d
RA0 bf843412600d6435 RA1 bfe63416e4ba7360 RA2 c0251e0441b0e726 RA3 c04f300ae4cba38d
RA4 c0644cb184282266 RA5 c067135cebccabb2 RA6 c054526557e4d2f2 RA7 c023a0efc69ac25c
SA1 4033a6b9bd707687 SA2 4061350c526ae721 SA3 407b290dd58a1a71 SA4 40842b1921ec2868
SA5 407ad02157700314 SA6 405b28a3ee48ae2c SA7 401a47ef8e484a93 SA8 bfaeeff2ee749a62
RB0 bf84341239e86f4a RB1 bfe993ba70c285de RB2 c031c209555f995a RB3 c064145d43c5ed98
RB4 c083ec881375f228 RB5 c09004616a2e5992 RB6 c07e384e9bdc383f SB1 403e568b261d5190
SB2 40745cae221b9f0a SB3 409802eb189d5118 SB4 40a8ffb7688c246a SB5 40a3f219cedf3be6
SB6 407da874e79fe763 SB7 c03670e242712d62
""".split()
C = {_ERF_HEX[i]: _from64(int(_ERF_HEX[i + 1], 16)) for i in range(0, len(_ERF_HEX), 2)}


def _erfc2(ix: int, x: float) -> float:
    if ix < 0x3FF40000:
        s = abs(x) - 1.0
        p = C["PA0"] + s * (C["PA1"] + s * (C["PA2"] + s * (C["PA3"] + s * (C["PA4"] + s * (C["PA5"] + s * C["PA6"])))))
        q = 1.0 + s * (C["QA1"] + s * (C["QA2"] + s * (C["QA3"] + s * (C["QA4"] + s * (C["QA5"] + s * C["QA6"])))))
        return 1.0 - C["ERX"] - p / q
    x = abs(x)
    s = 1.0 / (x * x)
    if ix < 0x4006DB6D:
        r = C["RA0"] + s * (C["RA1"] + s * (C["RA2"] + s * (C["RA3"] + s * (C["RA4"] + s * (C["RA5"] + s * (C["RA6"] + s * C["RA7"]))))))
        big = 1.0 + s * (C["SA1"] + s * (C["SA2"] + s * (C["SA3"] + s * (C["SA4"] + s * (C["SA5"] + s * (C["SA6"] + s * (C["SA7"] + s * C["SA8"])))))))
    else:
        r = C["RB0"] + s * (C["RB1"] + s * (C["RB2"] + s * (C["RB3"] + s * (C["RB4"] + s * (C["RB5"] + s * C["RB6"])))))
        big = 1.0 + s * (C["SB1"] + s * (C["SB2"] + s * (C["SB3"] + s * (C["SB4"] + s * (C["SB5"] + s * (C["SB6"] + s * C["SB7"]))))))
    z = _from64(_bits64(x) & 0xFFFFFFFF00000000)
    return exp64(-z * z - 0.5625) * exp64((z - x) * (z + x) + r / big) / x


def erfc64(x: float) -> float:
    ix = _hi(x) & 0x7FFFFFFF
    sign = _hi(x) >> 31
    if ix >= 0x7FF00000:
        return 2.0 * sign + (0.0 if math.isinf(x) else math.nan)
    if ix < 0x3FEB0000:
        if ix < 0x3C700000:
            return 1.0 - x
        z = x * x
        r = C["PP0"] + z * (C["PP1"] + z * (C["PP2"] + z * (C["PP3"] + z * C["PP4"])))
        s = 1.0 + z * (C["QQ1"] + z * (C["QQ2"] + z * (C["QQ3"] + z * (C["QQ4"] + z * C["QQ5"]))))
        y = r / s
        if sign == 1 or ix < 0x3FD00000:
            return 1.0 - (x + x * y)
        return 0.5 - (x - 0.5 + x * y)
    if ix < 0x403C0000:
        return 2.0 - _erfc2(ix, x) if sign == 1 else _erfc2(ix, x)
    tiny = _from64(0x0010000000000000)
    return 2.0 - tiny if sign == 1 else tiny * tiny


SQRT_2_F64 = _from64(0x3FF6A09E667F3BCD)


def std_normal_cdf(t: float) -> float:
    return 0.5 * erfc64(-t / SQRT_2_F64)


# --------------------------------------------------------------------------------------------
# Kernels


class Uniform:
    def __init__(self, low: float, high: float):
        self.low32 = F32(low)
        self.scale32 = F32(high - low)
        if not (np.isfinite(self.low32) and np.isfinite(self.scale32)):
            raise Unsupported("non-finite uniform constants")

    def values(self, seed, stream, n, logical=None):
        w = words(seed, stream, 0, n)
        high = self.low32 + self.scale32
        x = self.low32 + self.scale32 * u24(w)
        x = np.where(x < self.low32, self.low32, x)
        return np.where(x > high, high, x).astype(np.float32)

    def max_abs(self):
        return max(abs(float(self.low32)), abs(float(self.low32) + float(self.scale32)))


class Normal:
    def __init__(self, mean: float, std: float):
        self.mean32, self.std32 = F32(mean), F32(std)

    def values(self, seed, stream, n, logical=None):
        pairs = (n + 1) // 2
        w = words(seed, stream, 0, 2 * pairs).reshape(pairs, 2)
        w0, w1 = w[:, 0], w[:, 1]
        u1 = ((w0 >> U32(8)) + U32(1)).astype(np.float32) * TWO_POW_M24
        u2 = u24(w1)
        r = np.sqrt(F32(-2.0) * ln_f32(u1))
        s, c = sincos_2pi(u2)
        out = np.empty(2 * pairs, dtype=np.float32)
        out[0::2] = self.mean32 + self.std32 * (r * c)
        out[1::2] = self.mean32 + self.std32 * (r * s)
        return out[:n]

    def max_abs(self):
        return abs(float(self.mean32)) + 5.8 * abs(float(self.std32))


class Truncated:
    def __init__(self, mean, std, a, b):
        alpha, beta = (a - mean) / std, (b - mean) / std
        self.mirror = alpha + beta > 0.0
        if self.mirror:
            lo, hi = std_normal_cdf(-beta), std_normal_cdf(-alpha)
        else:
            lo, hi = std_normal_cdf(alpha), std_normal_cdf(beta)
        self.lo32, self.width32 = F32(lo), F32(hi - lo)
        self.mean32, self.std32, self.a32, self.b32 = F32(mean), F32(std), F32(a), F32(b)

    def values(self, seed, stream, n, logical=None):
        w = words(seed, stream, 0, n)
        v = (((w >> U32(9)) << U32(1)) | U32(1)).astype(np.float32) * TWO_POW_M24
        u = self.lo32 + self.width32 * v
        u = np.where(u < TRUNC_U_MIN, TRUNC_U_MIN, u).astype(np.float32)
        u = np.where(u > TRUNC_U_MAX, TRUNC_U_MAX, u).astype(np.float32)
        x = F32(2.0) * u - F32(1.0)
        t = (F32(4.0) * u) * (F32(1.0) - u)
        wl = -ln_f32(t)
        p = erfinv_factor(wl)
        z = (SQRT_2_F32 * p) * x
        if self.mirror:
            z = -z
        y = self.mean32 + self.std32 * z
        y = np.where(y < self.a32, self.a32, y)
        return np.where(y > self.b32, self.b32, y).astype(np.float32)

    def max_abs(self):
        return max(abs(float(self.a32)), abs(float(self.b32)))


class Constant:
    def __init__(self, v):
        self.v32 = F32(v)

    def values(self, seed, stream, n, logical=None):
        return np.full(n, self.v32, dtype=np.float32)

    def max_abs(self):
        return abs(float(self.v32))


class Eye:
    def __init__(self, gain):
        self.gain32 = F32(gain)

    def values(self, seed, stream, n, logical=None):
        r, c = logical
        out = np.zeros((r, c), dtype=np.float32)
        for i in range(min(r, c)):
            out[i, i] = self.gain32
        return out.reshape(-1)

    def max_abs(self):
        return abs(float(self.gain32))


class Dirac:
    def __init__(self, groups):
        self.groups = groups

    def values(self, seed, stream, n, logical=None):
        out_c, in_c, *k = logical
        g = out_c // self.groups
        m = min(g, in_c)
        w = np.zeros(logical, dtype=np.float32)
        centre = tuple(kd // 2 for kd in k)
        for o in range(out_c):
            i = o % g
            if i < m:
                w[(o, i, *centre)] = F32(1.0)
        return w.reshape(-1)

    def max_abs(self):
        return 1.0


class Sparse:
    def __init__(self, sparsity, std):
        self.sparsity, self.std32 = sparsity, F32(std)

    def values(self, seed, stream, n, logical=None):
        rows, cols = logical
        w = Normal(0.0, float(self.std32)).values(seed, stream, rows * cols).reshape(rows, cols)
        z = min(rows, math.ceil(self.sparsity * rows))
        for c in range(cols):
            aux = words(seed, stream, 2**64 + c * rows, z)
            perm = list(range(rows))
            for k in range(z):
                j = k + ((int(aux[k]) * (rows - k)) >> 32)
                perm[k], perm[j] = perm[j], perm[k]
                w[perm[k], c] = F32(0.0)
        return w.reshape(-1)

    def max_abs(self):
        return 5.8 * abs(float(self.std32))


# --------------------------------------------------------------------------------------------
# Number formatting (ryu style) and the canonical JSON writer


class F64(float):
    """A JSON number that is an f64 parameter (written in the shortest round-trip form)."""


def _digits_exp(r: str):
    """Shortest digits and kk (value = 0.d1..dn x 10^kk) from a shortest repr string."""
    m = re.fullmatch(r"(\d+)(?:\.(\d*))?(?:e([+-]?\d+))?", r)
    ip, fp, ex = m.group(1), m.group(2) or "", int(m.group(3) or 0)
    digits = (ip + fp).lstrip("0")
    lead_zeros = len(ip + fp) - len((ip + fp).lstrip("0"))
    kk = len(ip) + ex - lead_zeros
    digits = digits.rstrip("0")
    return digits, kk


def ryu_style(x: float, shortest: str, plain_max: int, small_min: int) -> str:
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    neg = shortest.startswith("-")
    digits, kk = _digits_exp(shortest.lstrip("-"))
    n = len(digits)
    if 0 < kk <= plain_max:
        if kk >= n:
            s = digits + "0" * (kk - n) + ".0"
        else:
            s = digits[:kk] + "." + digits[kk:]
    elif small_min < kk <= 0:
        s = "0." + "0" * (-kk) + digits
    else:
        s = digits[0] + ("." + digits[1:] if n > 1 else "") + "e" + str(kk - 1)
    return ("-" if neg else "") + s


def fmt64(x: float) -> str:
    return ryu_style(x, repr(float(x)), 16, -5)


def fmt32(x) -> str:
    return ryu_style(float(x), np.format_float_scientific(np.float32(x), unique=True, trim="-"), 13, -6)


def json_str(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dumps(v) -> str:
    """Compact JSON with sorted keys, the document's number and string rules."""
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-8"))
        return "{" + ",".join(json_str(k) + ":" + dumps(x) for k, x in items) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dumps(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, F64):
        return fmt64(float(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json_str(v)
    raise TypeError(type(v))


# --------------------------------------------------------------------------------------------
# The catalogue subset: name -> (canonical name, [(param, aliases, default)])

CATALOGUE = {
    "zeros": (["zero", "zeros_init"], []),
    "ones": (["one", "ones_init"], []),
    "constant": ([], [("value", ["val"], 0.0)]),
    "uniform": ([], [("low", ["a"], 0.0), ("high", ["b"], 1.0)]),
    "normal": ([], [("mean", [], 0.0), ("std", [], 1.0)]),
    "truncated_normal": (["trunc_normal"], [("mean", [], 0.0), ("std", [], 1.0), ("a", [], -2.0), ("b", [], 2.0)]),
    "random_uniform": (["RandomUniform"], [("minval", [], -0.05), ("maxval", [], 0.05)]),
    "random_normal": (["RandomNormal"], [("mean", [], 0.0), ("stddev", [], 0.05)]),
    "keras_truncated_normal": (["TruncatedNormal"], [("mean", [], 0.0), ("stddev", [], 0.05)]),
    "jax_uniform": ([], [("scale", [], 0.01)]),
    "jax_normal": ([], [("stddev", [], 0.01)]),
    "jax_truncated_normal": ([], [("stddev", [], 0.01), ("lower", [], -2.0), ("upper", [], 2.0)]),
    "variance_scaling": (["VarianceScaling"], [("scale", [], 1.0), ("mode", [], "fan_in"), ("distribution", [], "truncated_normal")]),
    "kaiming_uniform": (["kaiming_uniform_"], [("a", [], 0.0), ("mode", [], "fan_in"), ("nonlinearity", [], "leaky_relu")]),
    "kaiming_normal": (["kaiming_normal_"], [("a", [], 0.0), ("mode", [], "fan_in"), ("nonlinearity", [], "leaky_relu")]),
    "xavier_uniform": (["xavier_uniform_"], [("gain", [], 1.0)]),
    "xavier_normal": (["xavier_normal_"], [("gain", [], 1.0)]),
    "he_uniform": (["HeUniform"], []), "he_normal": (["HeNormal"], []),
    "glorot_uniform": (["GlorotUniform"], []), "glorot_normal": (["GlorotNormal"], []),
    "lecun_uniform": (["LecunUniform"], []), "lecun_normal": (["LecunNormal"], []),
    "orthogonal": (["Orthogonal", "orthogonal_"], [("gain", ["scale"], 1.0)]),
    "identity": (["eye", "eye_", "Identity"], [("gain", [], 1.0)]),
    "dirac": (["dirac_"], [("groups", [], 1)]),
    "delta_orthogonal": ([], [("scale", [], 1.0)]),
    "sparse": (["sparse_"], [("sparsity", [], None), ("std", [], 0.01)]),
    "auto": ([], []),
}
STRUCTURED = {"orthogonal", "identity", "dirac", "delta_orthogonal", "sparse"}
SEMANTICS = {
    "zeros": "all", "ones": "all", "constant": "all", "uniform": "pytorch", "normal": "pytorch",
    "truncated_normal": "pytorch", "random_uniform": "keras", "random_normal": "keras",
    "keras_truncated_normal": "keras", "jax_uniform": "jax", "jax_normal": "jax",
    "jax_truncated_normal": "jax", "variance_scaling": "keras/jax", "kaiming_uniform": "pytorch",
    "kaiming_normal": "pytorch", "xavier_uniform": "pytorch", "xavier_normal": "pytorch",
    "auto": "paraminit", "orthogonal": "all", "identity": "pytorch/keras", "dirac": "pytorch",
    "delta_orthogonal": "jax", "sparse": "pytorch",
}
for _n in ("he_uniform", "he_normal", "glorot_uniform", "glorot_normal", "lecun_uniform", "lecun_normal"):
    SEMANTICS[_n] = "keras/jax"


def init_named(name: str, **params) -> dict:
    """Canonical initializer object (every parameter), with overrides."""
    _, ps = CATALOGUE[name]
    d = {"name": name}
    for p, _, default in ps:
        v = params.get(p, default)
        d[p] = F64(v) if isinstance(v, float) else v
    return d


# determinism.md, "Framework-scoped initializer names": what a name means under keras / flax.
TORCH_ONLY = {"uniform": ("low", "high", "a", "b"), "normal": ("std",),
              "truncated_normal": ("std", "a", "b"), "trunc_normal": ("std", "a", "b"),
              "kaiming_uniform": ("a", "mode", "nonlinearity"),
              "kaiming_normal": ("a", "mode", "nonlinearity"),
              "xavier_uniform": ("gain",), "xavier_normal": ("gain",)}
SCOPED = {
    "keras": {"uniform": "random_uniform", "normal": "random_normal",
              "truncated_normal": "keras_truncated_normal"},
    "flax": {"uniform": "jax_uniform", "normal": "jax_normal",
             "truncated_normal": "jax_truncated_normal", "kaiming_uniform": "he_uniform",
             "kaiming_normal": "he_normal", "xavier_uniform": "glorot_uniform",
             "xavier_normal": "glorot_normal"},
}


def scope(v, fw: str):
    """The catalogue spelling of initializer `v` under framework `fw` (pytorch: unchanged)."""
    if fw == "pytorch":
        return v
    name, given = (v, {}) if isinstance(v, str) else (v["name"], {k: x for k, x in v.items() if k != "name"})
    if any(k in given for k in TORCH_ONLY.get(name, ())):
        return v  # PyTorch's parameters: PyTorch's initializer under every framework
    name = SCOPED[fw].get(name, name)
    if fw == "keras" and name in ("variance_scaling", "VarianceScaling"):
        if given.get("mode") == "fan_geo_avg":
            raise Unsupported("keras refuses fan_geo_avg")
        if given.get("distribution") == "normal":
            given["distribution"] = "truncated_normal"
        given.setdefault("distribution", "truncated_normal")
    return {"name": name, **given} if given else name


def parse_init(v) -> dict:
    if isinstance(v, str):
        name, given = v, {}
    else:
        given = dict(v)
        name = given.pop("name")
    canon = next((n for n, (al, _) in CATALOGUE.items() if n == name or name in al), None)
    if canon is None:
        raise Unsupported(f"initializer {name}")
    _, ps = CATALOGUE[canon]
    d = {"name": canon}
    for p, aliases, default in ps:
        keys = [k for k in [p, *aliases] if k in given]
        val = given.pop(keys[0]) if keys else default
        if val is None:
            raise Unsupported(f"{canon} needs {p}")
        if isinstance(default, str):
            d[p] = val
        elif isinstance(default, int) and not isinstance(default, bool):
            d[p] = int(val)
        else:
            d[p] = F64(float(val))
    if given:
        raise Unsupported(f"unknown parameters {given}")
    return d


# --------------------------------------------------------------------------------------------
# Fans, gains, resolution


def fans(fw: str, shape: list[int]):
    n = len(shape)
    if fw == "keras" and n == 0:
        return 1.0, 1.0
    if fw == "keras" and n == 1:
        return float(shape[0]), float(shape[0])
    if n < 2:
        raise Unsupported("fan rule below 2-D")
    if fw == "pytorch":
        rf = 1.0
        for d in shape[2:]:
            rf *= float(d)
        return float(shape[1]) * rf, float(shape[0]) * rf
    rf = 1.0
    for d in shape[: n - 2]:
        rf *= float(d)
    return float(shape[n - 2]) * rf, float(shape[n - 1]) * rf


def calculate_gain(nl: str, a: float) -> float:
    if nl == "tanh":
        return 5.0 / 3.0
    if nl == "relu":
        return math.sqrt(2.0)
    if nl == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + a * a))
    if nl == "selu":
        return 3.0 / 4.0
    return 1.0


TRUNC_CORR = _from64(0x3FEC25E4B6DBA981)


class Resolved:
    def __init__(self, spec, source, dist, **nums):
        self.spec, self.source, self.dist, self.nums = spec, source, dist, nums
        self.requested = spec["name"]

    def info_json(self) -> str:
        """The `init` object of the JSON body, without `reason` (free text, not normative)."""
        m = {"name": self.spec["name"], "distribution": self.dist,
             "semantics": SEMANTICS[self.spec["name"]]}
        params = {k: v for k, v in self.spec.items() if k != "name"}
        if params:
            m["params"] = params
        if self.requested != self.spec["name"]:
            m["requested"] = self.requested
        for k, v in self.nums.items():
            m[k] = F64(v)
        return dumps(m)


def _uniform(spec, lo, hi, **extra):
    return Resolved(spec, Uniform(lo, hi), "uniform", low=lo, high=hi, **extra)


def _normal(spec, mean, std, **extra):
    return Resolved(spec, Normal(mean, std), "normal", mean=mean, std=std, **extra)


def _trunc(spec, mean, std, a, b, **extra):
    return Resolved(spec, Truncated(mean, std, a, b), "truncated_normal", mean=mean, std=std, low=a, high=b, **extra)


def _vs(spec, fw, shape, fixed_fans, scale, mode, dist):
    fi, fo = fixed_fans if fixed_fans else fans(fw, shape)
    n = {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2.0}.get(mode)
    if n is None:
        n = math.sqrt(fi * fo)
    n = max(n, 1.0)
    extra = {"fan_in": fi, "fan_out": fo, "gain": math.sqrt(scale)}
    if dist == "truncated_normal":
        s = math.sqrt(scale / n) / TRUNC_CORR
        return _trunc(spec, 0.0, s, -2.0 * s, 2.0 * s, **extra)
    if dist == "uniform":
        lim = math.sqrt(3.0 * scale / n)
        return _uniform(spec, -lim, lim, **extra)
    return _normal(spec, 0.0, math.sqrt(scale / n), **extra)


def resolve(spec: dict, fw: str, shape: list[int], activation, fixed_fans=None) -> Resolved:
    n = spec["name"]
    p = spec
    if n in ("zeros", "ones", "constant"):
        v = {"zeros": 0.0, "ones": 1.0}.get(n, float(p.get("value", 0.0)))
        return Resolved(spec, Constant(v), "constant", mean=v)
    if n == "uniform":
        return _uniform(spec, p["low"], p["high"])
    if n == "random_uniform":
        return _uniform(spec, p["minval"], p["maxval"])
    if n == "jax_uniform":
        return _uniform(spec, 0.0, p["scale"])
    if n == "normal":
        return _normal(spec, p["mean"], p["std"])
    if n == "random_normal":
        return _normal(spec, p["mean"], p["stddev"])
    if n == "jax_normal":
        return _normal(spec, 0.0, p["stddev"])
    if n == "truncated_normal":
        return _trunc(spec, p["mean"], p["std"], p["a"], p["b"])
    if n == "keras_truncated_normal":
        m, s = p["mean"], p["stddev"]
        return _trunc(spec, m, s, m - 2.0 * s, m + 2.0 * s)
    if n == "jax_truncated_normal":
        s = p["stddev"]
        return _trunc(spec, 0.0, s, p["lower"] * s, p["upper"] * s)
    if n == "variance_scaling":
        return _vs(spec, fw, shape, fixed_fans, p["scale"], p["mode"], p["distribution"])
    if n in ("he_uniform", "he_normal", "glorot_uniform", "glorot_normal", "lecun_uniform", "lecun_normal"):
        scale, mode = {"he": (2.0, "fan_in"), "glorot": (1.0, "fan_avg"), "lecun": (1.0, "fan_in")}[n.split("_")[0]]
        return _vs(spec, fw, shape, fixed_fans, scale, mode, "uniform" if n.endswith("uniform") else "truncated_normal")
    if n in ("kaiming_uniform", "kaiming_normal"):
        fi, fo = fixed_fans if fixed_fans else fans(fw, shape)
        fan = fi if p["mode"] == "fan_in" else fo
        gain = calculate_gain(p["nonlinearity"], p["a"])
        std = gain / math.sqrt(fan)
        extra = {"fan_in": fi, "fan_out": fo, "gain": gain}
        if n == "kaiming_uniform":
            bound = math.sqrt(3.0) * std
            r = _uniform(spec, -bound, bound, **extra)
        else:
            r = _normal(spec, 0.0, std, **extra)
        r.nums["std"] = std
        return r
    if n in ("xavier_uniform", "xavier_normal"):
        fi, fo = fixed_fans if fixed_fans else fans(fw, shape)
        gain = p["gain"]
        std = gain * math.sqrt(2.0 / (fi + fo))
        extra = {"fan_in": fi, "fan_out": fo, "gain": gain}
        if n == "xavier_uniform":
            a = math.sqrt(3.0) * std
            r = _uniform(spec, -a, a, **extra)
        else:
            r = _normal(spec, 0.0, std, **extra)
        r.nums["std"] = std
        return r
    if n == "orthogonal":
        return Resolved(spec, Orthogonal(p["gain"]), "orthogonal", gain=p["gain"])
    if n == "delta_orthogonal":
        return Resolved(spec, DeltaOrthogonal(p["scale"]), "delta_orthogonal", gain=p["scale"])
    if n == "identity":
        return Resolved(spec, Eye(p["gain"]), "identity", gain=p["gain"])
    if n == "dirac":
        return Resolved(spec, Dirac(p["groups"]), "dirac")
    if n == "sparse":
        return Resolved(spec, Sparse(p["sparsity"], p["std"]), "sparse", std=p["std"])
    if n == "auto":
        choice = auto_choice(fw, activation)
        r = resolve(choice, fw, shape, activation, fixed_fans)
        r.requested = "auto"
        return r
    raise Unsupported(n)


RELU_LIKE = {"relu", "gelu", "silu", "elu", "mish", "softplus"}


def auto_choice(fw: str, act) -> dict:
    name, slope = act if act else ("linear", None)
    torch = fw == "pytorch"
    if name in RELU_LIKE:
        return init_named("kaiming_normal", a=0.0, nonlinearity="relu") if torch else init_named("he_normal")
    if name == "leaky_relu":
        if torch:
            return init_named("kaiming_normal", a=slope, nonlinearity="leaky_relu")
        return init_named("variance_scaling", scale=2.0 / (1.0 + slope * slope))
    if name in ("tanh", "sigmoid"):
        return init_named("xavier_uniform" if torch else "glorot_uniform")
    return init_named("kaiming_normal", a=0.0, nonlinearity="linear") if torch else init_named("lecun_normal")


# --------------------------------------------------------------------------------------------
# Requests: parse (subset), canonical form, tensors

ACT_ALIASES = {"identity": "linear", "none": "linear", "swish": "silu"}
ACTIVATIONS = {"linear", "relu", "leaky_relu", "gelu", "silu", "elu", "selu", "tanh", "sigmoid",
               "softmax", "softplus", "mish", "identity", "swish", "none"}
DTYPES = {"float32": "float32", "f32": "float32", "fp32": "float32", "float16": "float16",
          "f16": "float16", "fp16": "float16", "half": "float16", "bfloat16": "bfloat16",
          "bf16": "bfloat16", "float64": "float64", "f64": "float64", "fp64": "float64",
          "double": "float64"}


def take(d: dict, *keys, default=None):
    found = [k for k in keys if k in d]
    if len(found) > 1:
        raise Unsupported("conflicting spellings")
    return d.pop(found[0]) if found else default


def parse_activation(v):
    if isinstance(v, str):
        name, slope = v, None
    else:
        v = dict(v)
        name = v.pop("name")
        slope = take(v, "negative_slope", "alpha")
    name = ACT_ALIASES.get(name, name)
    if name == "leaky_relu":
        return ("leaky_relu", float(0.01 if slope is None else slope))
    return (name, None)


def act_json(a):
    if a[0] == "leaky_relu":
        return {"name": "leaky_relu", "negative_slope": F64(a[1])}
    return a[0]


KERNEL = [("kernel_initializer", ["weight_initializer"]), ("bias_initializer", [])]
NORM = [("weight_initializer", ["gamma_initializer"]), ("bias_initializer", ["beta_initializer"])]
REC = [("kernel_initializer", []), ("recurrent_initializer", []), ("bias_initializer", [])]
INIT_KEYS = {"dense": KERNEL, "conv1d": KERNEL, "conv2d": KERNEL, "conv3d": KERNEL,
             "embedding": [("embeddings_initializer", ["weight_initializer"])],
             "layer_norm": NORM, "rms_norm": NORM[:1], "batch_norm": NORM,
             "rnn": REC, "lstm": REC, "gru": REC,
             "multihead_attention": [("kernel_initializer", []), ("bias_initializer", [])]}


def parse_request(req: dict) -> dict:
    req = dict(req)
    seed = req.pop("seed")
    seed = int(seed)
    fw = {"torch": "pytorch", "jax": "flax"}.get(req.get("framework", "pytorch"), req.get("framework", "pytorch"))
    req.pop("framework", None)
    dtype = DTYPES[req.pop("dtype", "float32")]
    layers, prev = [], None
    for item in req.pop("layers", []):
        lay = dict(item)
        t = lay.pop("type")
        out = {"name": lay.pop("name", None)}
        if "dtype" in lay:
            out["dtype"] = DTYPES[lay.pop("dtype")]
        if t in ("dense", "linear"):
            shape_in = lay.pop("input_shape", None)
            fin = take(lay, "in_features", "input_dim", default=shape_in[-1] if shape_in else prev)
            out.update(type="dense", in_features=fin, out_features=take(lay, "out_features", "units"),
                       bias=take(lay, "bias", "use_bias", default=True))
            prev = out["out_features"]
        elif t in ("conv1d", "conv2d", "conv3d"):
            dims = int(t[4])
            ks = lay.pop("kernel_size")
            ks = [ks] if isinstance(ks, int) else list(ks)
            if len(ks) == 1 and dims > 1:
                ks = ks * dims
            cin = take(lay, "in_channels", default=prev)
            out.update(type=t, in_channels=cin, out_channels=take(lay, "out_channels", "filters"),
                       kernel_size=ks, groups=lay.pop("groups", 1), bias=take(lay, "bias", "use_bias", default=True))
            prev = out["out_channels"]
        elif t == "embedding":
            num = take(lay, "num_embeddings", "input_dim")
            dim = take(lay, "embedding_dim", "output_dim")
            out.update(type="embedding", num_embeddings=num, embedding_dim=dim)
            pi = lay.pop("padding_idx", None)
            if pi is not None:
                out["padding_idx"] = pi + num if pi < 0 else pi
            prev = dim
        elif t in ("layer_norm", "rms_norm"):
            ns = lay.pop("normalized_shape", [prev])
            ns = [ns] if isinstance(ns, int) else list(ns)
            aff = lay.pop("elementwise_affine", True)
            out.update(type=t, normalized_shape=ns, elementwise_affine=aff)
            if t == "layer_norm":
                out["bias"] = bool(aff and lay.pop("bias", True))
            prev = ns[-1]
        elif t in ("batch_norm", "batch_norm1d", "batch_norm2d", "batch_norm3d"):
            nf = lay.pop("num_features", prev)
            out.update(type="batch_norm", num_features=nf, affine=lay.pop("affine", True),
                       track_running_stats=lay.pop("track_running_stats", True))
            prev = nf
        elif t in ("rnn", "lstm", "gru"):
            hidden = take(lay, "hidden_size", "units")
            out.update(type=t, input_size=take(lay, "input_size", "input_dim", default=prev), hidden_size=hidden,
                       num_layers=lay.pop("num_layers", 1), bidirectional=lay.pop("bidirectional", False),
                       bias=take(lay, "bias", "use_bias", default=True))
            if t == "lstm":
                out["proj_size"] = lay.pop("proj_size", 0)
                if "unit_forget_bias" in lay:
                    out["unit_forget_bias"] = lay.pop("unit_forget_bias")
            if t == "gru" and "reset_after" in lay:
                out["reset_after"] = lay.pop("reset_after")
            prev = (out.get("proj_size") or hidden) * (2 if out["bidirectional"] else 1)
        elif t == "multihead_attention":
            e = lay.pop("embed_dim", prev)
            out.update(type=t, embed_dim=e, num_heads=lay.pop("num_heads"), kdim=lay.pop("kdim", e),
                       vdim=lay.pop("vdim", e), bias=take(lay, "bias", "use_bias", default=True),
                       add_bias_kv=lay.pop("add_bias_kv", False))
            prev = e
        elif t == "dropout":
            out.update(type="dropout", p=F64(float(take(lay, "p", "rate", default=0.5))))
        elif t in ACTIVATIONS:
            a = parse_activation({"name": t, **lay}) if t == "leaky_relu" else parse_activation(t)
            lay = {}
            # A standalone linear activation is written `identity` ("linear" is a dense layer).
            out.update(type="identity" if a[0] == "linear" else a[0], act=a)
            if a[0] == "leaky_relu":
                out["negative_slope"] = F64(a[1])
        else:
            raise Unsupported(f"layer type {t}")
        for key, aliases in INIT_KEYS.get(out["type"], []):
            v = take(lay, key, *aliases)
            if v is not None:
                out[key] = parse_init(scope(v, fw))
        if "activation" in lay:
            out["activation"] = parse_activation(lay.pop("activation"))
        if lay:
            raise Unsupported(f"layer fields {sorted(lay)}")
        layers.append(out)
    tensors = []
    for t in req.pop("tensors", []):
        t = dict(t)
        d = {"name": t.pop("name"), "shape": list(t.pop("shape")), "init": parse_init(scope(t.pop("init"), fw))}
        if "dtype" in t:
            d["dtype"] = DTYPES[t.pop("dtype")]
        for k in ("fan_in", "fan_out"):
            if k in t:
                d[k] = t.pop(k)
        if t:
            raise Unsupported(f"tensor fields {sorted(t)}")
        tensors.append(d)
    hf = req.pop("hf_config", None)
    if hf is not None:
        hf = parse_hf(hf)
    only = req.pop("only", None)
    shard = req.pop("shard", None)
    if shard is not None:
        shard = dict(shard)
        shard = {"rank": shard.pop("rank"), "world_size": shard.pop("world_size"),
                 "dim": shard.pop("dim", 0), "dims": dict(shard.pop("dims", {}))}
    if req:
        raise Unsupported(f"request fields {sorted(req)}")
    return {"seed": seed, "framework": fw, "dtype": dtype, "layers": layers, "tensors": tensors,
            "hf": hf, "only": only, "shard": shard}


def canonical(r: dict) -> str:
    layers = []
    for l in r["layers"]:
        m = {k: v for k, v in l.items() if k not in ("name", "act", "activation") and v is not None}
        if l.get("name") is not None:
            m["name"] = l["name"]
        if l.get("activation") is not None:
            m["activation"] = act_json(l["activation"])
        layers.append(m)
    seed = r["seed"]
    doc = {"seed": str(seed) if seed > 2**53 else seed, "framework": r["framework"],
           "dtype": r["dtype"], "layers": layers, "tensors": r["tensors"]}
    if r.get("hf") is not None:
        doc["hf_config"] = r["hf"]
    if r.get("only") is not None:
        doc["only"] = r["only"]
    if r.get("shard") is not None:
        doc["shard"] = r["shard"]
    return dumps(doc)


KERAS_BASE = {"rnn": "simple_rnn", "lstm": "lstm", "gru": "gru", "multihead_attention": "multi_head_attention",
              "dense": "dense", "conv1d": "conv1d", "conv2d": "conv2d", "conv3d": "conv3d",
              "embedding": "embedding", "layer_norm": "layer_normalization",
              "rms_norm": "rms_normalization", "batch_norm": "batch_normalization"}
FLAX_BASE = {"rnn": "SimpleCell", "lstm": "LSTMCell", "gru": "GRUCell",
             "multihead_attention": "MultiHeadDotProductAttention", "dense": "Dense", "conv1d": "Conv", "conv2d": "Conv", "conv3d": "Conv",
             "embedding": "Embed", "layer_norm": "LayerNorm", "rms_norm": "RMSNorm",
             "batch_norm": "BatchNorm"}
# role -> (pytorch, keras, flax, flax collection)
ROLES = {
    "weight": ("weight", "kernel", "kernel", "params"), "bias": ("bias", "bias", "bias", "params"),
    "embed": ("weight", "embeddings", "embedding", "params"),
    "norm_w": ("weight", "gamma", "scale", "params"), "rms_w": ("weight", "scale", "scale", "params"),
    "norm_b": ("bias", "beta", "bias", "params"),
    "running_mean": ("running_mean", "moving_mean", "mean", "batch_stats"),
    "running_var": ("running_var", "moving_variance", "var", "batch_stats"),
    "num_batches_tracked": ("num_batches_tracked", None, None, None),
}
IDENTITY_ROLE = {"weight": "weight", "bias": "bias", "embed": "weight", "norm_w": "weight",
                 "rms_w": "weight", "norm_b": "bias", "running_mean": "running_mean",
                 "running_var": "running_var", "num_batches_tracked": "num_batches_tracked"}


class Tensor:
    def __init__(self, name, dtype, logical, perm, identity, resolved, zero_row=None):
        self.name, self.dtype, self.logical, self.perm = name, dtype, logical, perm
        self.shape = [logical[a] for a in perm] if perm else list(logical)
        self.identity, self.resolved, self.zero_row = identity, resolved, zero_row
        self.const_range = None  # (start, end, value): Keras unit_forget_bias
        self.slice = None  # (dim, start, full_shape) when sharded

    def values(self, seed: int) -> np.ndarray:
        n = int(np.prod(self.logical, dtype=np.int64)) if self.logical else 1
        v = self.resolved.source.values(seed, stream_id(self.identity), n, self.logical)
        if self.const_range is not None:
            a, b, x = self.const_range
            v[a:b] = F32(x)
        if self.zero_row is not None:
            row = int(np.prod(self.logical[1:], dtype=np.int64))
            v[self.zero_row * row : (self.zero_row + 1) * row] = F32(0.0)
        full_shape = [self.logical[a] for a in self.perm] if self.perm else list(self.logical)
        if self.perm:
            v = v.reshape(self.logical).transpose(self.perm).reshape(-1)
        if self.slice is not None:
            d, start, _ = self.slice
            v = np.take(v.reshape(full_shape), range(start, start + self.shape[d]), axis=d).reshape(-1)
        return np.ascontiguousarray(v, dtype=np.float32)

    def slice_json(self):
        d, start, full = self.slice
        return {"dim": d, "full_shape": full, "length": self.shape[d], "start": start}


def glob_regex(p: str):
    """The glob subset `only`/`shard` use: `*`, `?` (any character, `.` and `/` included),
    `[…]`, `{a,b}` and `\\` escapes."""
    out, i = [], 0
    while i < len(p):
        ch = p[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            i += 1
            out.append(re.escape(p[i]))
        elif ch == "[":
            j = p.index("]", i + 1)
            out.append("[" + p[i + 1 : j].replace("!", "^", 1) + "]")
            i = j
        elif ch == "{":
            j = p.index("}", i)
            out.append("(?:" + "|".join(re.escape(a) for a in p[i + 1 : j].split(",")) + ")")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.S)


def shard(sh: dict, tensors: list) -> None:
    """`shard`: the most specific matching `dims` pattern (a literal beats a glob, then the
    longer, then the first in byte order) gives the axis, else `dim`; `numpy.array_split`."""
    literal = lambda p: not any(c in p for c in "*?[{\\")
    for t in tensors:
        matches = [p for p in sh["dims"] if glob_regex(p).fullmatch(t.name)]
        if matches:
            kind = any(literal(p) for p in matches)
            same = [p for p in matches if literal(p) == kind]
            best = max(len(p) for p in same)
            axis = sh["dims"][sorted(p for p in same if len(p) == best)[0]]
        else:
            axis = sh["dim"]
        if axis is None or not t.shape:
            continue
        a = axis + len(t.shape) if axis < 0 else axis
        size, n, r = t.shape[a], sh["world_size"], sh["rank"]
        base, rem = divmod(size, n)
        start, length = r * base + min(r, rem), base + (1 if r < rem else 0)
        full = list(t.shape)
        t.shape = list(t.shape)
        t.shape[a] = length
        t.slice = (a, start, full)


def recurrent(l, fw, prefix, put, nxt, out):
    t, H = l["type"], l["hidden_size"]
    G = {"rnn": 1, "lstm": 4, "gru": 3}[t]
    dirs = 2 if l["bidirectional"] else 1
    L = l["num_layers"]
    k_init, r_init, b_init = l.get("kernel_initializer"), l.get("recurrent_initializer"), l.get("bias_initializer")
    if fw == "pytorch":
        P = l.get("proj_size", 0) or H
        bound = 1.0 / math.sqrt(H)
        default = init_named("uniform", low=-bound, high=bound)
        for k in range(L):
            for d in range(dirs):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                inp = l["input_size"] if k == 0 else P * dirs
                items = [(f"weight_ih{sfx}", [G * H, inp], k_init, False), (f"weight_hh{sfx}", [G * H, P], r_init, False)]
                if l["bias"]:
                    items += [(f"bias_ih{sfx}", [G * H], b_init, True), (f"bias_hh{sfx}", [G * H], b_init, True)]
                if l.get("proj_size", 0):
                    items.append((f"weight_hr{sfx}", [P, H], r_init, False))
                for n, logical, req, is_bias in items:
                    put(prefix, n, n, logical, None, req, default, is_bias=is_bias)
        return
    keras_cls = KERAS_BASE[t]
    flax_cls = FLAX_BASE[t]
    named = l.get("name") is not None
    user = lambda i: prefix if i == 0 else f"{prefix}_{i}"
    if L > 1 or dirs > 1:
        names = []
        for k in range(L):
            if fw == "keras":
                if dirs == 2:
                    wrapper = user(k) if named else nxt("bidirectional")
                    inner = prefix if (k == 0 and not named) else nxt(keras_cls)
                    names += [f"{wrapper}/forward_{inner}", f"{wrapper}/backward_{inner}"]
                else:
                    names.append(prefix if k == 0 else (user(k) if named else nxt(keras_cls)))
            else:
                for d in range(dirs):
                    i = k * dirs + d
                    names.append(prefix if i == 0 else (user(i) if named else nxt(flax_cls)))
    else:
        names = [prefix]
    for k in range(L):
        for d in range(dirs):
            S = names[k * dirs + d]
            inp = l["input_size"] if k == 0 else H * dirs
            rev = "_reverse" if d else ""
            sfx = "" if (k == 0 and d == 0) else f"_l{k}{rev}"
            tsfx = f"_l{k}{rev}"
            if fw == "keras":
                cell = keras_cls + "_cell"
                gru = t == "gru"
                put(S, f"{cell}/kernel", f"kernel{sfx}" if gru else f"weight_ih{tsfx}", [G * H, inp], [1, 0],
                    k_init, init_named("glorot_uniform"))
                put(S, f"{cell}/recurrent_kernel", f"recurrent_kernel{sfx}" if gru else f"weight_hh{tsfx}",
                    [G * H, H], [1, 0], r_init, init_named("orthogonal"))
                if l["bias"]:
                    logical = [2, G * H] if gru and l.get("reset_after", True) else [G * H]
                    put(S, f"{cell}/bias", f"bias{sfx}", logical, None, b_init, init_named("zeros"), is_bias=True)
                    if t == "lstm" and l.get("unit_forget_bias", True):
                        out[-1].const_range = (H, 2 * H, 1.0)
            else:
                gates = {"lstm": [("ii", 1, 0), ("if", 1, 0), ("ig", 1, 0), ("io", 1, 0),
                                  ("hi", 0, 1), ("hf", 0, 1), ("hg", 0, 1), ("ho", 0, 1)],
                         "gru": [("ir", 1, 1), ("iz", 1, 1), ("in", 1, 1), ("hr", 0, 0), ("hz", 0, 0), ("hn", 0, 1)],
                         "rnn": [("i", 1, 1), ("h", 0, 0)]}[t]
                for g, is_input, has_bias in gates:
                    if is_input:
                        put(S, f"{g}/kernel", f"{g}/kernel{sfx}", [H, inp], [1, 0], k_init, init_named("lecun_normal"))
                    else:
                        put(S, f"{g}/kernel", f"{g}/kernel{sfx}", [H, H], [1, 0], r_init, init_named("orthogonal"))
                    if has_bias:
                        put(S, f"{g}/bias", f"{g}/bias{sfx}", [H], None, b_init, init_named("zeros"), is_bias=True)


def attention(l, fw, prefix, put, weight_default):
    E, h = l["embed_dim"], l["num_heads"]
    k_init, b_init = l.get("kernel_initializer"), l.get("bias_initializer")
    if fw == "pytorch":
        xav = init_named("xavier_uniform")
        items = []
        if l["kdim"] == E and l["vdim"] == E:
            items.append(("in_proj_weight", [3 * E, E], xav, False))
        else:
            items += [("q_proj_weight", [E, E], xav, False), ("k_proj_weight", [E, l["kdim"]], xav, False),
                      ("v_proj_weight", [E, l["vdim"]], xav, False)]
        if l["bias"]:
            items.append(("in_proj_bias", [3 * E], init_named("zeros"), True))
        items.append(("out_proj.weight", [E, E], weight_default(), False))
        if l["bias"]:
            items.append(("out_proj.bias", [E], init_named("zeros"), True))
        for n, logical, default, is_bias in items:
            put(prefix, n, n, logical, None, b_init if is_bias else k_init, default, is_bias=is_bias)
        if l["add_bias_kv"]:
            for n in ("bias_k", "bias_v"):
                put(prefix, n, n, [1, 1, E], None, None, init_named("xavier_normal"))
        return
    d = E // h
    default = init_named("glorot_uniform" if fw == "keras" else "lecun_normal")
    zeros = init_named("zeros")
    for n, inp in (("query", E), ("key", l["kdim"]), ("value", l["vdim"])):
        put(prefix, f"{n}/kernel", f"{n}/kernel", [inp, h, d], None, k_init, default, (float(inp), float(h * d)))
        if l["bias"]:
            put(prefix, f"{n}/bias", f"{n}/bias", [h, d], None, b_init, zeros, (float(h * d), float(h * d)), True)
    o = "attention_output" if fw == "keras" else "out"
    put(prefix, f"{o}/kernel", "output/kernel", [h, d, E], None, k_init, default, (float(h * d), float(E)))
    if l["bias"]:
        put(prefix, f"{o}/bias", "output/bias", [E], None, b_init, zeros, None, True)


def activation_for(layers, i):
    own = layers[i].get("activation")
    if own is not None:
        return own
    for l in layers[i + 1 :]:
        if l["type"] == "dropout":
            continue
        return l.get("act")
    return None


def plan(r: dict) -> list[Tensor]:
    fw = r["framework"]
    out = []
    counts: dict[str, int] = {}
    for k, l in enumerate(r["layers"]):
        t = l["type"]
        if "act" in l or t == "dropout":
            continue
        if l.get("name") is not None:
            prefix = l["name"]
        elif fw == "pytorch":
            prefix = str(k)
        else:
            base = (KERAS_BASE if fw == "keras" else FLAX_BASE)[t]
            c = counts.get(base, 0)
            counts[base] = c + 1
            prefix = (base if c == 0 else f"{base}_{c}") if fw == "keras" else f"{base}_{c}"
        layer_id = l["name"] if l.get("name") is not None else f"layers[{k}]"
        dtype = l.get("dtype", r["dtype"])
        act = activation_for(r["layers"], k)

        def add(role, logical, perm, requested, default, fixed_fans=None, dt=None):
            shape = [logical[a] for a in perm] if perm else list(logical)
            if requested is not None and requested["name"] == "auto" and IDENTITY_ROLE[role] != "weight":
                spec, ff = init_named("zeros"), None
            elif requested is not None:
                spec, ff = requested, None
            else:
                spec, ff = default, fixed_fans
            res = resolve(spec, fw, shape, act, ff)
            pt, ke, fl, coll = ROLES[role]
            name = {"pytorch": f"{prefix}.{pt}", "keras": f"{prefix}/{ke}", "flax": f"{coll}/{prefix}/{fl}"}[fw]
            out.append(Tensor(name, dt or dtype, logical, perm, f"layer/{layer_id}/{IDENTITY_ROLE[role]}", res))

        def weight_default():
            return {"pytorch": init_named("kaiming_uniform", a=math.sqrt(5.0)),
                    "keras": init_named("glorot_uniform"), "flax": init_named("lecun_normal")}[fw]

        def bias_default(fan_in):
            if fw != "pytorch":
                return init_named("zeros")
            b = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            return init_named("uniform", low=-b, high=b)

        def put(pfx, tail, role, logical, perm, requested, default, fixed_fans=None, is_bias=False):
            shape = [logical[a] for a in perm] if perm else list(logical)
            if requested is not None and requested["name"] == "auto" and is_bias:
                spec = init_named("zeros")
            elif requested is not None:
                spec = requested
            else:
                spec = default
            res = resolve(spec, fw, shape, act, fixed_fans)
            name = {"pytorch": f"{pfx}.{tail}", "keras": f"{pfx}/{tail}", "flax": f"params/{pfx}/{tail}"}[fw]
            out.append(Tensor(name, dtype, logical, perm, f"layer/{layer_id}/{role}", res))

        def nxt(base):
            c = counts.get(base, 0)
            counts[base] = c + 1
            return (base if c == 0 else f"{base}_{c}") if fw == "keras" else f"{base}_{c}"

        if t in ("rnn", "lstm", "gru"):
            recurrent(l, fw, prefix, put, nxt, out)
            continue
        if t == "multihead_attention":
            attention(l, fw, prefix, put, weight_default)
            continue

        if t == "dense":
            perm = None if fw == "pytorch" else [1, 0]
            add("weight", [l["out_features"], l["in_features"]], perm, l.get("kernel_initializer"), weight_default())
            if l["bias"]:
                add("bias", [l["out_features"]], None, l.get("bias_initializer"), bias_default(float(l["in_features"])))
        elif t.startswith("conv"):
            dims = len(l["kernel_size"])
            logical = [l["out_channels"], l["in_channels"] // l["groups"], *l["kernel_size"]]
            perm = None if fw == "pytorch" else [*range(2, 2 + dims), 1, 0]
            rf = 1
            for kk in l["kernel_size"]:
                rf *= kk
            add("weight", logical, perm, l.get("kernel_initializer"), weight_default())
            if l["bias"]:
                add("bias", [l["out_channels"]], None, l.get("bias_initializer"),
                    bias_default(float((l["in_channels"] // l["groups"]) * rf)))
        elif t == "embedding":
            default = {"pytorch": init_named("normal"), "keras": init_named("random_uniform"),
                       "flax": init_named("variance_scaling", distribution="normal")}[fw]
            logical = [l["num_embeddings"], l["embedding_dim"]]
            ff = None
            if fw == "flax":
                ff = (float(l["embedding_dim"]), fans(fw, logical)[1])
            add("embed", logical, None, l.get("embeddings_initializer"), default, ff)
            out[-1].zero_row = l.get("padding_idx")
        else:  # norms
            shape = l["normalized_shape"] if t != "batch_norm" else [l["num_features"]]
            affine = l.get("elementwise_affine", l.get("affine"))
            has_bias = l.get("bias", affine) if t != "rms_norm" else False
            if affine:
                add("rms_w" if t == "rms_norm" else "norm_w", shape, None, l.get("weight_initializer"), init_named("ones"))
            if has_bias:
                add("norm_b", shape, None, l.get("bias_initializer"), init_named("zeros"))
            if t == "batch_norm" and l["track_running_stats"]:
                add("running_mean", shape, None, None, init_named("zeros"))
                add("running_var", shape, None, None, init_named("ones"))
                if fw == "pytorch":
                    add("num_batches_tracked", [], None, None, init_named("zeros"), dt="int64")
    if r.get("hf") is not None:
        out.extend(hf_tensors(r["hf"], r["dtype"]))
    for t in r["tensors"]:
        ff = None
        if "fan_in" in t or "fan_out" in t:
            if "fan_in" in t and "fan_out" in t:
                ff = (float(t["fan_in"]), float(t["fan_out"]))
            else:
                fi, fo = fans(fw, t["shape"])
                ff = (float(t.get("fan_in", fi)), float(t.get("fan_out", fo)))
        shape, logical, perm = t["shape"], t["shape"], None
        if t["init"]["name"] in STRUCTURED and fw != "pytorch" and len(shape) >= 2:
            n = len(shape)
            logical = [shape[n - 1], shape[n - 2], *shape[: n - 2]]
            perm = [*range(2, n), 1, 0]
        res = resolve(t["init"], fw, shape, None, ff)
        out.append(Tensor(t["name"], t.get("dtype", r["dtype"]), logical, perm, f"tensor/{t['name']}", res))
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise Unsupported("duplicate names")
    if r.get("only") is not None:
        pats = [glob_regex(p) for p in r["only"]]
        out = [t for t in out if any(p.fullmatch(t.name) for p in pats)]
    if r.get("shard") is not None:
        shard(r["shard"], out)
    for t in out:
        m = t.resolved.source.max_abs()
        limit = 65504.0 if t.dtype == "float16" else float(np.finfo(np.float32).max) * (1.0 - 1e-7)
        if t.dtype != "int64" and m > limit:
            raise Unsupported("values beyond the dtype")
    rank = {"int64": 20, "float64": 19, "float32": 17, "bfloat16": 14, "float16": 13}
    out.sort(key=lambda t: (-rank[t.dtype], t.name.encode("utf-8")))
    return out


# --------------------------------------------------------------------------------------------
# Orthogonal: the blocked Householder QR exactly as the document orders it (f64, exact fma)

from fractions import Fraction  # noqa: E402


def fma(x: float, y: float, z: float) -> float:
    """IEEE fusedMultiplyAdd: x·y + z rounded once (float(Fraction) rounds correctly)."""
    if x == 0.0 or y == 0.0:
        return z + 0.0 * 0.0 if z != 0.0 else 0.0 + z  # x·y is ±0: the sum is z (±0 + +0 = +0)
    return float(Fraction(x) * Fraction(y) + Fraction(z))


QR_B = 64


def householder_q(M: list[list[float]], m: int, n: int) -> list[list[float]]:
    """Thin Q (m × n) of M (m ≥ n), with R's diagonal made positive."""
    M = [row[:] for row in M]
    panels = []  # (j0, w, V, T)
    alphas = [0.0] * n
    for j0 in range(0, n, QR_B):
        w = min(QR_B, n - j0)
        rows = m - j0
        P = [[M[j0 + r][j0 + a] for a in range(w)] for r in range(rows)]
        betas = [0.0] * w
        for k in range(w):
            acc = 0.0
            for r in range(k, rows):
                acc = acc + P[r][k] * P[r][k]
            norm = math.sqrt(acc)
            alpha = -norm if P[k][k] >= 0 else norm
            alphas[j0 + k] = alpha
            P[k][k] = P[k][k] - alpha
            vn2 = 0.0
            for r in range(k, rows):
                vn2 = vn2 + P[r][k] * P[r][k]
            if vn2 == 0.0:
                betas[k] = 0.0
                continue
            beta = 2.0 / vn2
            betas[k] = beta
            for j in range(k + 1, w):
                acc = 0.0
                for r in range(k, rows):
                    acc = acc + P[r][k] * P[r][j]
                s_j = beta * acc
                for r in range(k, rows):
                    P[r][j] = P[r][j] - s_j * P[r][k]
        V = [[P[r][a] if r >= a else 0.0 for a in range(w)] for r in range(rows)]
        G = [[0.0] * w for _ in range(w)]
        for a in range(w):
            for b in range(w):
                acc = 0.0
                for r in range(rows):
                    acc = acc + V[r][a] * V[r][b]
                G[a][b] = acc
        T = [[0.0] * w for _ in range(w)]
        for i in range(w):
            T[i][i] = betas[i]
            for a in range(i):
                acc = 0.0
                for b in range(a, i):
                    acc = acc + T[a][b] * G[b][i]
                T[a][i] = -betas[i] * acc
        # the panel's own columns of M are not needed again; write R's part back for clarity
        cols = list(range(j0 + w, n))
        if cols:
            C = [[M[j0 + r][j] for j in cols] for r in range(rows)]
            W1 = [[0.0] * len(cols) for _ in range(w)]
            for a in range(w):
                for jj in range(len(cols)):
                    acc = 0.0
                    for r in range(rows):
                        acc = fma(V[r][a], C[r][jj], acc)
                    W1[a][jj] = acc
            W2 = [[0.0] * len(cols) for _ in range(w)]
            for a in range(w):
                for jj in range(len(cols)):
                    acc = 0.0
                    for b in range(0, a + 1):
                        acc = acc + T[b][a] * W1[b][jj]
                    W2[a][jj] = acc
            for r in range(rows):
                for jj, j in enumerate(cols):
                    acc = 0.0
                    for a in range(w):
                        acc = fma(V[r][a], W2[a][jj], acc)
                    M[j0 + r][j] = C[r][jj] - acc
        panels.append((j0, w, V, T))
    Q = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(m)]
    for j0, w, V, T in reversed(panels):
        rows = m - j0
        cols = list(range(j0, n))
        D = [[Q[j0 + r][j] for j in cols] for r in range(rows)]
        W1 = [[0.0] * len(cols) for _ in range(w)]
        for a in range(w):
            for jj in range(len(cols)):
                acc = 0.0
                for r in range(rows):
                    acc = fma(V[r][a], D[r][jj], acc)
                W1[a][jj] = acc
        W2 = [[0.0] * len(cols) for _ in range(w)]
        for a in range(w):
            for jj in range(len(cols)):
                acc = 0.0
                for b in range(a, w):
                    acc = acc + T[a][b] * W1[b][jj]
                W2[a][jj] = acc
        for r in range(rows):
            for jj, j in enumerate(cols):
                acc = 0.0
                for a in range(w):
                    acc = fma(V[r][a], W2[a][jj], acc)
                Q[j0 + r][j] = D[r][jj] - acc
    for k in range(n):
        if alphas[k] < 0:
            for i in range(m):
                Q[i][k] = -Q[i][k]
    return Q


def orthogonal_matrix(seed: int, stream: int, rows: int, cols: int, gain: float) -> list[list[float]]:
    a = Normal(0.0, 1.0).values(seed, stream, rows * cols).astype(np.float64).reshape(rows, cols)
    if rows < cols:
        q = householder_q(a.T.tolist(), cols, rows)
        return [[gain * q[c][r] for c in range(cols)] for r in range(rows)]
    q = householder_q(a.tolist(), rows, cols)
    return [[gain * q[r][c] for c in range(cols)] for r in range(rows)]


class Orthogonal:
    def __init__(self, gain):
        self.gain = gain

    def values(self, seed, stream, n, logical=None):
        rows = logical[0]
        cols = int(np.prod(logical[1:], dtype=np.int64))
        q = orthogonal_matrix(seed, stream, rows, cols, self.gain)
        return np.array(q, dtype=np.float64).astype(np.float32).reshape(-1)

    def max_abs(self):
        return abs(self.gain)


class DeltaOrthogonal:
    def __init__(self, scale):
        self.scale = scale

    def values(self, seed, stream, n, logical=None):
        out_c, in_c, *k = logical
        q = np.array(orthogonal_matrix(seed, stream, out_c, in_c, self.scale), dtype=np.float64)
        w = np.zeros(logical, dtype=np.float32)
        centre = tuple((kd - 1) // 2 for kd in k)
        for o in range(out_c):
            for i in range(in_c):
                w[(o, i, *centre)] = np.float32(q[o, i])
        return w.reshape(-1)

    def max_abs(self):
        return abs(self.scale)


# --------------------------------------------------------------------------------------------
# hf_config

HF_CLASSES = {"LlamaForCausalLM": "llama", "LlamaModel": "llama", "MistralForCausalLM": "mistral",
              "MistralModel": "mistral", "Qwen2ForCausalLM": "qwen2", "Qwen2Model": "qwen2",
              "GPT2LMHeadModel": "gpt2", "GPT2Model": "gpt2", "BertForMaskedLM": "bert", "BertModel": "bert"}
# Without `architectures`: the base class AutoModel.from_config builds for the model_type.
HF_BASE = {"llama": "LlamaModel", "mistral": "MistralModel", "qwen2": "Qwen2Model",
           "gpt2": "GPT2Model", "bert": "BertModel"}


def parse_hf(cfg: dict) -> dict:
    """The canonical hf_config (architectures, model_type and the family's keys, resolved)."""
    arch = (cfg.get("architectures") or [None])[0] or HF_BASE[cfg["model_type"]]
    mt = HF_CLASSES[arch]
    g = lambda *keys, default=None: next((cfg[k] for k in keys if cfg.get(k) is not None), default)
    out = {"architectures": [arch], "model_type": mt}
    if mt in ("llama", "mistral", "qwen2"):
        dv, di, dkv = {"llama": (32000, 11008, None), "mistral": (32000, 14336, 8), "qwen2": (151936, 22016, 32)}[mt]
        h, n = g("hidden_size", default=4096), g("num_attention_heads", default=32)
        out.update(vocab_size=g("vocab_size", default=dv), hidden_size=h,
                   intermediate_size=g("intermediate_size", default=di),
                   num_hidden_layers=g("num_hidden_layers", default=32), num_attention_heads=n,
                   num_key_value_heads=g("num_key_value_heads", default=dkv or n),
                   head_dim=g("head_dim", default=h // n),
                   attention_bias=mt == "llama" and bool(g("attention_bias", default=False)),
                   mlp_bias=mt == "llama" and bool(g("mlp_bias", default=False)),
                   tie_word_embeddings=bool(g("tie_word_embeddings", default=False)),
                   pad_token_id=g("pad_token_id"))
    elif mt == "gpt2":
        e = g("n_embd", "hidden_size", default=768)
        out.update(vocab_size=g("vocab_size", default=50257), n_positions=g("n_positions", "max_position_embeddings", default=1024),
                   n_embd=e, n_layer=g("n_layer", "num_hidden_layers", default=12),
                   n_head=g("n_head", "num_attention_heads", default=12), n_inner=g("n_inner", default=4 * e),
                   tie_word_embeddings=bool(g("tie_word_embeddings", default=True)))
    else:
        out.update(vocab_size=g("vocab_size", default=30522), hidden_size=g("hidden_size", default=768),
                   num_hidden_layers=g("num_hidden_layers", default=12), num_attention_heads=g("num_attention_heads", default=12),
                   intermediate_size=g("intermediate_size", default=3072),
                   max_position_embeddings=g("max_position_embeddings", default=512),
                   type_vocab_size=g("type_vocab_size", default=2),
                   pad_token_id=(0 if "pad_token_id" not in cfg else cfg["pad_token_id"]),
                   tie_word_embeddings=bool(g("tie_word_embeddings", default=True)))
    ir = cfg.get("initializer_range")
    out["initializer_range"] = None if ir is None else F64(float(ir))
    return out


def hf_tensors(c: dict, dtype: str) -> list:
    """(name, shape, init spec, zero row) of every tensor, from the document's table."""
    arch, mt = c["architectures"][0], c["model_type"]
    ir = c["initializer_range"]
    sigma = 0.02 if ir is None or float(ir) == 0.0 else float(ir)
    N = lambda s: init_named("normal", std=s)
    Z, O = init_named("zeros"), init_named("ones")
    out = []
    t = lambda name, shape, spec, zero_row=None: out.append((name, shape, spec, zero_row))
    if mt in ("llama", "mistral", "qwen2"):
        head = arch.endswith("ForCausalLM")
        p = "model." if head else ""
        h, I, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
        q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
        qkv_bias = c["attention_bias"] or mt == "qwen2"
        t(f"{p}embed_tokens.weight", [c["vocab_size"], h], N(sigma), c["pad_token_id"])
        for l in range(c["num_hidden_layers"]):
            a = f"{p}layers.{l}.self_attn"
            for proj, rows in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
                t(f"{a}.{proj}.weight", [rows, h], N(sigma))
                if qkv_bias:
                    t(f"{a}.{proj}.bias", [rows], Z)
            t(f"{a}.o_proj.weight", [h, q], N(sigma))
            if c["attention_bias"]:
                t(f"{a}.o_proj.bias", [h], Z)
            for proj, shape in (("gate_proj", [I, h]), ("up_proj", [I, h]), ("down_proj", [h, I])):
                t(f"{p}layers.{l}.mlp.{proj}.weight", shape, N(sigma))
                if c["mlp_bias"]:
                    t(f"{p}layers.{l}.mlp.{proj}.bias", [shape[0]], Z)
            t(f"{p}layers.{l}.input_layernorm.weight", [h], O)
            t(f"{p}layers.{l}.post_attention_layernorm.weight", [h], O)
        t(f"{p}norm.weight", [h], O)
        if head and not c["tie_word_embeddings"]:
            t("lm_head.weight", [c["vocab_size"], h], N(sigma))
    elif mt == "gpt2":
        head = arch == "GPT2LMHeadModel"
        p = "transformer." if head else ""
        raw = 0.02 if ir is None else float(ir)
        e, inner = c["n_embd"], c["n_inner"]
        proj = raw / math.sqrt(2.0 * c["n_layer"])
        t(f"{p}wte.weight", [c["vocab_size"], e], N(sigma))
        t(f"{p}wpe.weight", [c["n_positions"], e], N(sigma))
        for l in range(c["n_layer"]):
            b = f"{p}h.{l}"
            for ln in ("ln_1", "ln_2"):
                t(f"{b}.{ln}.weight", [e], O)
                t(f"{b}.{ln}.bias", [e], Z)
            t(f"{b}.attn.c_attn.weight", [e, 3 * e], N(raw))
            t(f"{b}.attn.c_attn.bias", [3 * e], Z)
            t(f"{b}.attn.c_proj.weight", [e, e], N(proj))
            t(f"{b}.attn.c_proj.bias", [e], Z)
            t(f"{b}.mlp.c_fc.weight", [e, inner], N(raw))
            t(f"{b}.mlp.c_fc.bias", [inner], Z)
            t(f"{b}.mlp.c_proj.weight", [inner, e], N(proj))
            t(f"{b}.mlp.c_proj.bias", [e], Z)
        t(f"{p}ln_f.weight", [e], O)
        t(f"{p}ln_f.bias", [e], Z)
        if head and not c["tie_word_embeddings"]:
            t("lm_head.weight", [c["vocab_size"], e], N(sigma))
    else:
        mlm = arch == "BertForMaskedLM"
        p = "bert." if mlm else ""
        h, i = c["hidden_size"], c["intermediate_size"]
        ln = lambda base: (t(f"{base}.LayerNorm.weight", [h], O), t(f"{base}.LayerNorm.bias", [h], Z))
        dense = lambda base, o, i_: (t(f"{base}.weight", [o, i_], N(sigma)), t(f"{base}.bias", [o], Z))
        t(f"{p}embeddings.word_embeddings.weight", [c["vocab_size"], h], N(sigma), c["pad_token_id"])
        t(f"{p}embeddings.position_embeddings.weight", [c["max_position_embeddings"], h], N(sigma))
        t(f"{p}embeddings.token_type_embeddings.weight", [c["type_vocab_size"], h], N(sigma))
        ln(f"{p}embeddings")
        for l in range(c["num_hidden_layers"]):
            b = f"{p}encoder.layer.{l}"
            for q in ("query", "key", "value"):
                dense(f"{b}.attention.self.{q}", h, h)
            dense(f"{b}.attention.output.dense", h, h)
            ln(f"{b}.attention.output")
            dense(f"{b}.intermediate.dense", i, h)
            dense(f"{b}.output.dense", h, i)
            ln(f"{b}.output")
        if mlm:
            t("cls.predictions.bias", [c["vocab_size"]], Z)
            dense("cls.predictions.transform.dense", h, h)
            ln("cls.predictions.transform")
            if not c["tie_word_embeddings"]:
                t("cls.predictions.decoder.weight", [c["vocab_size"], h], N(sigma))
                # Untied, transformers 5 saves the decoder's own bias too (it is no longer an
                # alias of cls.predictions.bias).
                t("cls.predictions.decoder.bias", [c["vocab_size"]], Z)
        else:
            dense("pooler.dense", h, h)
    return [Tensor(n, dtype, shape, None, f"hf/{n}", resolve(spec, "pytorch", shape, None), zr)
            for n, shape, spec, zr in out]


# --------------------------------------------------------------------------------------------
# Output: dtypes, the safetensors file, the JSON body

ST = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64", "int64": "I64"}


def bf16_bits(v: np.ndarray) -> np.ndarray:
    x = v.astype(np.float32).view(U32).astype(np.uint64)
    rounded = ((x + np.uint64(0x7FFF) + ((x >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)) & np.uint64(0xFFFF)
    return rounded.astype(np.uint16)


def encode(dtype: str, v: np.ndarray) -> bytes:
    if dtype == "float32":
        return v.astype("<f4").tobytes()
    if dtype == "float64":
        return v.astype("<f8").tobytes()
    if dtype == "float16":
        return v.astype("<f2").tobytes()
    if dtype == "bfloat16":
        return bf16_bits(v).astype("<u2").tobytes()
    return v.astype("<i8").tobytes()


SIZES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int64": 8}


def safetensors_file(req: dict, version: str) -> bytes:
    r = parse_request(req)
    tensors = plan(r)
    meta = {"format": "pt", "paraminit.algorithm": "paraminit-v1", "paraminit.framework": r["framework"],
            "paraminit.request": canonical(r), "paraminit.seed": str(r["seed"]), "paraminit.version": version}
    slices = {t.name: t.slice_json() for t in tensors if t.slice is not None}
    if slices:
        meta["paraminit.slices"] = dumps(slices)
    h = "{" + json_str("__metadata__") + ":{" + ",".join(json_str(k) + ":" + json_str(meta[k]) for k in sorted(meta)) + "}"
    data, off = [], 0
    for t in tensors:
        b = encode(t.dtype, t.values(r["seed"]))
        h += "," + json_str(t.name) + ':{"dtype":"' + ST[t.dtype] + '","shape":[' + ",".join(map(str, t.shape)) + \
             '],"data_offsets":[' + str(off) + "," + str(off + len(b)) + "]}"
        off += len(b)
        data.append(b)
    h += "}"
    hb = h.encode("utf-8")
    n = (len(hb) + 7) // 8 * 8
    return struct.pack("<Q", n) + hb + b" " * (n - len(hb)) + b"".join(data)


def _shortest16(bits: int, dtype: str) -> str:
    if dtype == "float16":
        v = float(np.array([bits], dtype=np.uint16).view(np.float16)[0])
        to16_64 = lambda x: int(np.array([x], dtype=np.float64).astype(np.float16).view(np.uint16)[0])
        to16_32 = lambda x: int(np.array([x], dtype=np.float32).astype(np.float16).view(np.uint16)[0])
    else:
        v = struct.unpack("<f", struct.pack("<I", bits << 16))[0]
        to16_32 = lambda x: int(bf16_bits(np.array([x], dtype=np.float32))[0])
        to16_64 = _f64_to_bf16
    if v == 0.0:
        return "-0.0" if math.copysign(1.0, v) < 0 else "0.0"
    for p in range(1, 18):
        sci = "%.*e" % (p - 1, abs(v))
        back = float(sci) * (-1.0 if v < 0 else 1.0)
        if to16_64(back) == bits and to16_32(back) == bits:
            return ryu_style(back, ("-" if v < 0 else "") + sci, 16, -5)
    raise AssertionError


def _f64_to_bf16(x: float) -> int:
    """Round-to-nearest-even f64 -> bf16 (8 significant bits), directly from the f64."""
    b = _bits64(x)
    sign = b >> 63
    a = abs(x)
    if a == 0.0:
        return sign << 15
    m, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1)
    # bf16 normal: 8 significant bits; exponent range as f32
    e2 = max(e, -125)
    scaled = math.ldexp(a, 8 - e2)  # integer part = 8-bit significand (or less if subnormal)
    q = math.floor(scaled)
    frac = scaled - q
    if frac > 0.5 or (frac == 0.5 and q % 2 == 1):
        q += 1
    val = math.ldexp(q, e2 - 8)
    f32b = struct.unpack("<I", struct.pack("<f", val))[0]
    return (sign << 15) | (f32b >> 16)


def json_body(req: dict, version: str) -> bytes:
    """The JSON response body, with no `reason` keys (compare with `strip_reasons` of the real one)."""
    r = parse_request(req)
    tensors = plan(r)
    seed = r["seed"]
    head = '{"seed":' + (json_str(str(seed)) if seed > 2**53 else str(seed)) + ',"framework":' + json_str(r["framework"]) + \
           ',"algorithm":"paraminit-v1","service_version":' + json_str(version) + ',"tensors":['
    parts = [head]
    if not tensors:
        return (head + "]}\n").encode()
    for i, t in enumerate(tensors):
        v = t.values(seed)
        if t.dtype == "float32":
            nums = [fmt32(x) for x in v]
        elif t.dtype == "float64":
            nums = [fmt64(float(x)) for x in v]
        elif t.dtype == "float16":
            nums = [_shortest16(int(b), "float16") for b in v.astype(np.float16).view(np.uint16)]
        elif t.dtype == "bfloat16":
            nums = [_shortest16(int(b), "bfloat16") for b in bf16_bits(v)]
        else:
            nums = [str(int(x)) for x in v]
        parts.append(("," if i else "") + "\n" + '{"name":' + json_str(t.name) + ',"dtype":' + json_str(t.dtype) +
                     ',"shape":[' + ",".join(map(str, t.shape)) + '],"init":' + t.resolved.info_json() +
                     (',"slice":' + dumps(t.slice_json()) if t.slice is not None else "") +
                     ',"data":[' + ",".join(nums) + "]}")
    parts.append("\n]}\n")
    return "".join(parts).encode("utf-8")


def strip_reasons(body: bytes) -> bytes:
    """A JSON body with every `"reason":"…"` entry removed (it is never the first key)."""
    return re.sub(rb',"reason":"(?:[^"\\]|\\.)*"', b"", body)
