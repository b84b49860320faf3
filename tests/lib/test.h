/* tests/lib/test.h: what every C test includes: cmocka (TAP output is chosen
 * by the environment meson sets) and paths to the repository's fixtures. */
#ifndef SHOAL_TEST_H
#define SHOAL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#ifndef SHOAL_SOURCE_ROOT
#error "SHOAL_SOURCE_ROOT must be defined by tests/meson.build"
#endif

#define FIXTURES_DIR SHOAL_SOURCE_ROOT "/tests/fixtures"
#define DEMO_MODEL_DIR SHOAL_SOURCE_ROOT "/models/kjv-llama-16m"

#endif
