/* minimal_decode: decodes a dydca file through libdydca and prints the md5 of
 * its output pictures, the same line as `dydca decode FILE -o - --muxer md5`.
 *
 *   cc -std=c99 minimal_decode.c $(pkg-config --cflags --libs dydca) -o minimal_decode
 *   ./minimal_decode in.mkv [level]        (level: -1 auto, 0 richest; default 0)
 *
 * What is hashed (as the CLI's md5 muxer): every picture in order, its Y, U and
 * V planes, each row of `width` bytes without the stride padding. MD5 is
 * written out below (RFC 1321) so that the example needs nothing but dydca.
 */
#include <dydca/dydca.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MD5 (RFC 1321), compact ---------------------------------------------- */

typedef struct {
  uint32_t state[4];
  uint64_t bytes;      /* total length so far */
  uint8_t block[64];   /* pending input, bytes % 64 of it used */
} Md5;

static uint32_t rotl(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }

static void md5_block(Md5* m, const uint8_t* p) {
  /* Per-round shifts, and K[i] = floor(abs(sin(i + 1)) * 2^32). */
  static const int s[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                            5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                            4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                            6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
  static const uint32_t k[64] = {
      0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
      0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
      0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
      0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
      0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
      0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
      0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
      0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
      0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
      0xeb86d391};
  uint32_t w[16], a = m->state[0], b = m->state[1], c = m->state[2], d = m->state[3];
  for (int i = 0; i < 16; ++i)  /* little-endian words */
    w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
           (uint32_t)p[4 * i + 3] << 24;
  for (int i = 0; i < 64; ++i) {
    uint32_t f;
    int g;
    if (i < 16) { f = (b & c) | (~b & d); g = i; }
    else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
    else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
    else { f = c ^ (b | ~d); g = (7 * i) % 16; }
    const uint32_t t = d;
    d = c;
    c = b;
    b = b + rotl(a + f + k[i] + w[g], s[i]);
    a = t;
  }
  m->state[0] += a; m->state[1] += b; m->state[2] += c; m->state[3] += d;
}

static void md5_init(Md5* m) {
  static const uint32_t init[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  memcpy(m->state, init, sizeof init);
  m->bytes = 0;
}

static void md5_update(Md5* m, const uint8_t* p, size_t n) {
  while (n > 0) {
    const size_t used = (size_t)(m->bytes % 64), take = n < 64 - used ? n : 64 - used;
    memcpy(m->block + used, p, take);
    m->bytes += take;
    p += take;
    n -= take;
    if (used + take == 64) md5_block(m, m->block);
  }
}

/* Pads (0x80, zeros, the length in bits) and writes the digest as 32 hex digits. */
static void md5_hex(Md5* m, char out[33]) {
  const uint64_t bits = m->bytes * 8;
  const uint8_t one = 0x80, zero = 0;
  md5_update(m, &one, 1);
  while (m->bytes % 64 != 56) md5_update(m, &zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint8_t)(bits >> (8 * i));
  md5_update(m, len, 8);
  for (int i = 0; i < 16; ++i) sprintf(out + 2 * i, "%02x", (m->state[i / 4] >> (8 * (i % 4))) & 0xff);
  out[32] = '\0';
}

/* ---- decoding --------------------------------------------------------------- */

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE.mkv [level]\n", argv[0]);
    return 2;
  }
  DydcaSettings settings;
  dydca_default_settings(&settings);
  /* The CLI decodes at level 0 unless told otherwise; -1 would let the QoS
   * controller choose per frame (and the md5 would depend on the CPU's load). */
  settings.level = argc > 2 ? atoi(argv[2]) : 0;

  DydcaContext* ctx = NULL;
  int err = dydca_open(&ctx, argv[1], &settings);
  if (err < 0) {
    fprintf(stderr, "%s: %s\n", dydca_error_string(err), dydca_last_error(NULL));
    return 1;
  }

  Md5 md5;
  md5_init(&md5);
  DydcaPicture pic;
  long frames = 0;
  while ((err = dydca_get_picture(ctx, &pic)) == DYDCA_OK) {
    for (int p = 0; p < 3; ++p) {  /* plane p: luma, then the two half-size chroma planes */
      const int w = p ? (pic.width + 1) / 2 : pic.width;
      const int h = p ? (pic.height + 1) / 2 : pic.height;
      for (int y = 0; y < h; ++y) md5_update(&md5, pic.planes[p] + (ptrdiff_t)y * pic.stride[p], (size_t)w);
    }
    ++frames;
    dydca_picture_unref(&pic);  /* the buffer goes back to the library for the next picture */
  }
  if (err != DYDCA_ERR_EOS) {  /* anything but the end of the stream is a failure */
    fprintf(stderr, "%s: %s\n", dydca_error_string(err), dydca_last_error(ctx));
    dydca_close(&ctx);
    return 1;
  }
  dydca_close(&ctx);

  char hex[33];
  md5_hex(&md5, hex);
  printf("%s\n", hex);
  fprintf(stderr, "%ld frames\n", frames);
  return 0;
}
