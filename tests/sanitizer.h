// TAPEGRAD_UNDER_ASAN is defined when the tests are built with AddressSanitizer, so that heavy
// property tests run fewer cases and memory tests (RSS under ASan means nothing) step aside.
// gcc defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang answers __has_feature instead.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_UNDER_ASAN 1
#endif
#endif
