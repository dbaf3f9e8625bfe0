// Sanitizer builds only. The ASan runtime refuses dlopen(..., RTLD_DEEPBIND) and aborts
// (https://github.com/google/sanitizers/issues/611); oneTBB inside the OpenVINO wheel opens
// its libtbbbind helper that way. This definition interposes dlopen for the executable
// it is linked into and forwards every call to the next dlopen (ASan's interceptor, then
// glibc) with that one flag cleared; nothing else changes. It is linked into the test, CLI
// and example executables of EDGEGEN_SANITIZE builds only, never into libedgegen.
#include <dlfcn.h>

extern "C" void *dlopen(const char *file, int mode) {
  using Fn = void *(*)(const char *, int);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "dlopen"));
  return next(file, mode & ~RTLD_DEEPBIND);
}
