// Preloaded into Debian 12's User-Mode Linux kernel (linux.uml) so that it runs on hosts whose XSAVE area is
// larger than the one it was built for (AMX: 11008 bytes against UML's fixed 2696).
//
// UML switches a guest process's FPU state with PTRACE_SETREGSET(NT_X86_XSTATE), and the host kernel takes
// that only as a whole standard-format XSAVE buffer: a shorter one fails with EFAULT, so UML's first process
// dies with "userspace - ptrace set fp regs failed, errno = 14". This wrapper pads such a buffer to the host's
// size. The components past what UML passed (AMX tile state; no guest can use AMX, UML does not grant the
// permission) are marked as in their initial state in the XSAVE header, so the host kernel zeroes them
// instead of reading the padding. Every other ptrace call, and a buffer that is already whole, goes through
// untouched: on hosts where UML runs as built, this changes nothing.
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

#define XSAVE_HEADER_OFFSET 512
#define PROBE_BYTES (64 * 1024)

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

static ptrace_fn real_ptrace;
// The host's XSAVE regset size as the kernel reports it (0: not asked yet, -1: could not be read).
static long host_xstate_bytes;

// The host kernel truncates a GETREGSET answer to the regset's size and says how much it wrote: asking with
// a buffer larger than any XSAVE area tells the exact size the kernel wants back on SETREGSET.
static long xstate_bytes(pid_t pid) {
  if (host_xstate_bytes != 0) return host_xstate_bytes;
  void *probe = calloc(1, PROBE_BYTES);
  if (!probe) return -1;
  struct iovec iov = {probe, PROBE_BYTES};
  host_xstate_bytes = real_ptrace(PTRACE_GETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &iov) == 0 ? (long)iov.iov_len : -1;
  free(probe);
  return host_xstate_bytes;
}

// XSAVE components that do not fit whole in the first `bytes` of a standard-format area (CPUID leaf 0xD
// gives each user component's size and offset). Worked out once per length: UML passes the same one on
// every context switch, and CPUID in a virtual machine traps to the hypervisor.
static uint64_t components_beyond(size_t bytes) {
  static __thread size_t cached_bytes;
  static __thread uint64_t cached_mask;
  if (bytes == cached_bytes) return cached_mask;
  uint64_t mask = 0;
  for (unsigned i = 2; i < 63; i++) {
    unsigned size, offset, ecx, edx;
    if (!__get_cpuid_count(0xd, i, &size, &offset, &ecx, &edx) || size == 0) continue;
    if (ecx & 1) continue; // supervisor component: not in the ptrace (user) layout
    if ((size_t)offset + size > bytes) mask |= 1ULL << i;
  }
  cached_mask = mask;
  cached_bytes = bytes;
  return mask;
}

static long set_padded(pid_t pid, struct iovec *iov, long want) {
  // One whole-size buffer for the process's life (the host's size does not change), not one per call.
  static __thread unsigned char *whole;
  if (!whole && !(whole = malloc((size_t)want))) {
    errno = ENOMEM;
    return -1;
  }
  memcpy(whole, iov->iov_base, iov->iov_len);
  memset(whole + iov->iov_len, 0, (size_t)want - iov->iov_len);
  uint64_t xfeatures;
  memcpy(&xfeatures, whole + XSAVE_HEADER_OFFSET, sizeof xfeatures);
  xfeatures &= ~components_beyond(iov->iov_len);
  memcpy(whole + XSAVE_HEADER_OFFSET, &xfeatures, sizeof xfeatures);
  struct iovec padded = {whole, (size_t)want};
  return real_ptrace(PTRACE_SETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &padded);
}

long ptrace(enum __ptrace_request request, ...) {
  va_list ap;
  va_start(ap, request);
  pid_t pid = va_arg(ap, pid_t);
  void *addr = va_arg(ap, void *);
  void *data = va_arg(ap, void *);
  va_end(ap);
  if (!real_ptrace) real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
  if (request == PTRACE_SETREGSET && (uintptr_t)addr == NT_X86_XSTATE && data) {
    struct iovec *iov = data;
    long want = xstate_bytes(pid);
    if (want > 0 && iov->iov_len >= XSAVE_HEADER_OFFSET + 64 && iov->iov_len < (size_t)want) return set_padded(pid, iov, want);
  }
  return real_ptrace((int)request, pid, addr, data);
}
