/* engine/kern_avx512_q.c: the Q4/Q8 decode products of kern_q_dot.h
 * compiled with AVX-512 (F, BW, VL) and VNNI, for the table of
 * ENG_ISA_AVX512 (kernels.c picks it only where the CPU has them). Layout,
 * activation preparation and everything else are kern_avx2_q.c's.
 */
#include <stdint.h>

#include "engine/kern_avx2.h"

#define KERN_Q_DOT_ENTRY eng_avx512_dot_rows_q
#include "engine/kern_q_dot.h"
