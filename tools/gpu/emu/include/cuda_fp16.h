/* CPU stand-in for cuda_fp16.h (see cuda_runtime.h here): the few F16 helpers the
 * backend uses, round to nearest even like the device's cvt.rn.f16.f32. */
#ifndef EMU_CUDA_FP16_H
#define EMU_CUDA_FP16_H
#include <stdint.h>
#include <string.h>

struct __half { uint16_t x; };
struct alignas(4) __half2 { __half x, y; };
struct float2;

static inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.x & 0x8000) << 16, em = h.x & 0x7fffu;
    uint32_t bits;
    if (em >= 0x7c00u) bits = (em << 13) | 0x7f800000u;
    else if (em >= 0x0400u) bits = (em << 13) + (112u << 23);
    else { const float f = (float)em * 0x1p-24f; memcpy(&bits, &f, 4); }
    bits |= sign;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static inline __half __float2half_rn(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    __half h;
    if (ax > 0x7f800000u) { h.x = (uint16_t)(sign | 0x7e00); return h; }
    if (ax >= 0x477ff000u) { h.x = (uint16_t)(sign | 0x7c00); return h; }
    if (ax < 0x38800000u) {
        if (ax < 0x33000000u) { h.x = (uint16_t)sign; return h; }
        const uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        h.x = (uint16_t)(sign | r);
        return h;
    }
    h.x = (uint16_t)(sign | ((ax + 0xc8000fffu + ((ax >> 13) & 1)) >> 13));
    return h;
}
static inline __half __ushort_as_half(unsigned short u) { __half h; h.x = u; return h; }
#define __half22float2(h2) make_float2(__half2float((h2).x), __half2float((h2).y))

#endif
