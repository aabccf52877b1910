/* hash/sha256mb_kernel.h - the SHA-256 compression of 8 or 16 messages at once,
 * one message per 32-bit lane of a vector; a template that sha256mb.c
 * includes once per instruction set (no include guard on purpose).
 *
 * The includer defines:
 *   MB_NAME            the function's name
 *   MB_TARGET          its __attribute__((target(...)))
 *   MB_VEC             the vector type
 *   MB_LOAD(p), MB_STORE(p, v)    aligned load/store of a vector
 *   MB_ADD(a, b)       lane-wise addition modulo 2^32
 *   MB_SET1(x)         x in every lane
 *   MB_BSIG0, MB_BSIG1, MB_SSIG0, MB_SSIG1, MB_CH, MB_MAJ
 *                      the functions of FIPS 180-4 4.1.2, lane-wise
 *   MB_LOAD_BLOCK(w, ptr, off)
 *                      w[t] = big-endian word t of the 64-byte block at
 *                      ptr[lane] + off, in each lane (FIPS 180-4 5.2.1)
 * and #undefs nothing: the template does that at its end.
 *
 * The function hashes nblocks consecutive 64-byte blocks at ptr[lane]
 * into the lane's column of st (row j = hash word H_j of every lane). */

/* FIPS 180-4 6.2.2 step 3: one round; the caller rotates the names. */
#define MB_ROUND(a, b, c, d, e, f, g, h, i, wi)                              \
  do {                                                                       \
    MB_VEC t1_ = MB_ADD(MB_ADD(h, MB_BSIG1(e)),                              \
                        MB_ADD(MB_CH(e, f, g),                               \
                               MB_ADD(MB_SET1(kt[i]), wi)));                 \
    MB_VEC t2_ = MB_ADD(MB_BSIG0(a), MB_MAJ(a, b, c));                       \
    d = MB_ADD(d, t1_);                                                      \
    h = MB_ADD(t1_, t2_);                                                    \
  } while (0)

/* FIPS 180-4 6.2.2 step 1 for 16 <= t <= 63, over a ring of 16 words. */
#define MB_SCHED(t)                                                          \
  (w[(t) & 15] = MB_ADD(MB_ADD(MB_SSIG1(w[((t) - 2) & 15]),                  \
                               w[((t) - 7) & 15]),                           \
                        MB_ADD(MB_SSIG0(w[((t) - 15) & 15]), w[(t) & 15])))

#define MB_EIGHT(t, W)                                                       \
  do {                                                                       \
    MB_ROUND(a, b, c, d, e, f, g, h, (t) + 0, W((t) + 0));                   \
    MB_ROUND(h, a, b, c, d, e, f, g, (t) + 1, W((t) + 1));                   \
    MB_ROUND(g, h, a, b, c, d, e, f, (t) + 2, W((t) + 2));                   \
    MB_ROUND(f, g, h, a, b, c, d, e, (t) + 3, W((t) + 3));                   \
    MB_ROUND(e, f, g, h, a, b, c, d, (t) + 4, W((t) + 4));                   \
    MB_ROUND(d, e, f, g, h, a, b, c, (t) + 5, W((t) + 5));                   \
    MB_ROUND(c, d, e, f, g, h, a, b, (t) + 6, W((t) + 6));                   \
    MB_ROUND(b, c, d, e, f, g, h, a, (t) + 7, W((t) + 7));                   \
  } while (0)

#define MB_WLOADED(t) w[(t)]

MB_TARGET static void MB_NAME(uint32_t st[8][MB_MAX_LANES],
                              const uint8_t *const *ptr, size_t nblocks)
{
  MB_VEC h0 = MB_LOAD(st[0]), h1 = MB_LOAD(st[1]), h2 = MB_LOAD(st[2]),
         h3 = MB_LOAD(st[3]), h4 = MB_LOAD(st[4]), h5 = MB_LOAD(st[5]),
         h6 = MB_LOAD(st[6]), h7 = MB_LOAD(st[7]);
  const uint32_t *kt = sha256_k;
  size_t off;

  /* Hide the constants from the optimizer: it would build each K_i from
   * an immediate (a move and a broadcast, two ALU instructions), where a
   * broadcast from memory costs only a load. */
  __asm__("" : "+r"(kt));
  for (off = 0; nblocks > 0; nblocks--, off += 64) {
    MB_VEC w[16];
    MB_VEC a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;

    MB_LOAD_BLOCK(w, ptr, off);
    MB_EIGHT(0, MB_WLOADED);
    MB_EIGHT(8, MB_WLOADED);
    MB_EIGHT(16, MB_SCHED);
    MB_EIGHT(24, MB_SCHED);
    MB_EIGHT(32, MB_SCHED);
    MB_EIGHT(40, MB_SCHED);
    MB_EIGHT(48, MB_SCHED);
    MB_EIGHT(56, MB_SCHED);
    /* FIPS 180-4 6.2.2 step 4 */
    h0 = MB_ADD(h0, a);
    h1 = MB_ADD(h1, b);
    h2 = MB_ADD(h2, c);
    h3 = MB_ADD(h3, d);
    h4 = MB_ADD(h4, e);
    h5 = MB_ADD(h5, f);
    h6 = MB_ADD(h6, g);
    h7 = MB_ADD(h7, h);
  }
  MB_STORE(st[0], h0);
  MB_STORE(st[1], h1);
  MB_STORE(st[2], h2);
  MB_STORE(st[3], h3);
  MB_STORE(st[4], h4);
  MB_STORE(st[5], h5);
  MB_STORE(st[6], h6);
  MB_STORE(st[7], h7);
}

#undef MB_ROUND
#undef MB_SCHED
#undef MB_EIGHT
#undef MB_WLOADED
#undef MB_NAME
#undef MB_TARGET
#undef MB_VEC
#undef MB_LOAD
#undef MB_STORE
#undef MB_ADD
#undef MB_SET1
#undef MB_BSIG0
#undef MB_BSIG1
#undef MB_SSIG0
#undef MB_SSIG1
#undef MB_CH
#undef MB_MAJ
#undef MB_LOAD_BLOCK
