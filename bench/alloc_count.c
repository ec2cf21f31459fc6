/* LD_PRELOAD shim that counts heap allocations of a whole process (malloc, calloc,
 * realloc, the aligned ones; C++ operator new goes through malloc), for allocations per
 * reading of `weir replay`. At exit it writes the count to $WEIR_ALLOC_COUNT_FILE.
 * glibc only (it forwards to __libc_*). */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);

/* The build hides symbols by default; these must be seen to interpose libc's. */
#define EXPORT __attribute__((visibility("default")))

static atomic_long g_count;

static void count(void) { atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed); }

EXPORT void* malloc(size_t n) {
  count();
  return __libc_malloc(n);
}
EXPORT void* calloc(size_t a, size_t b) {
  count();
  return __libc_calloc(a, b);
}
EXPORT void* realloc(void* p, size_t n) {
  count();
  return __libc_realloc(p, n);
}
EXPORT void* memalign(size_t align, size_t n) {
  count();
  return __libc_memalign(align, n);
}
EXPORT void* aligned_alloc(size_t align, size_t n) {
  count();
  return __libc_memalign(align, n);
}
EXPORT int posix_memalign(void** out, size_t align, size_t n) {
  count();
  void* p = __libc_memalign(align, n);
  if (p == NULL) return 12; /* ENOMEM */
  *out = p;
  return 0;
}

__attribute__((destructor)) static void report(void) {
  const char* path = getenv("WEIR_ALLOC_COUNT_FILE");
  long n = atomic_load(&g_count);
  if (path == NULL) return;
  FILE* f = fopen(path, "w");
  if (f == NULL) return;
  fprintf(f, "%ld\n", n);
  fclose(f);
}
