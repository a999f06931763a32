// Does what UML does on a host whose XSAVE area is larger than UML's buffer: restores a stopped child's FPU
// state with PTRACE_SETREGSET(NT_X86_XSTATE) from a buffer shorter than the host's (here: the legacy area and
// the header only, 576 bytes), then reads it back. Prints one line, for test/unit/uml-xstate.test.ts:
//   set-failed errno=N        the kernel refused the short buffer (what UML sees without the shim)
//   restored xmm0=ok|bad avx=init|in-use   the state the child holds afterwards
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHORT_BYTES 576
#define XMM0_OFFSET 160
#define HEADER_OFFSET 512

int main(void) {
  pid_t child = fork();
  if (child == 0) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    _exit(0);
  }
  int status;
  waitpid(child, &status, 0);
  static unsigned char whole[64 * 1024];
  struct iovec iov = {whole, sizeof whole};
  if (ptrace(PTRACE_GETREGSET, child, (void *)NT_X86_XSTATE, &iov) != 0) {
    printf("get-failed errno=%d\n", errno);
    kill(child, SIGKILL);
    return 1;
  }
  unsigned char part[SHORT_BYTES];
  memcpy(part, whole, SHORT_BYTES);
  memset(part + XMM0_OFFSET, 0x5a, 16);
  // The AVX component (upper halves of the YMM registers) marked in use, as a process that ran AVX code has it.
  uint64_t xfeatures;
  memcpy(&xfeatures, part + HEADER_OFFSET, 8);
  xfeatures |= 1u << 2;
  memcpy(part + HEADER_OFFSET, &xfeatures, 8);
  struct iovec short_iov = {part, SHORT_BYTES};
  if (ptrace(PTRACE_SETREGSET, child, (void *)NT_X86_XSTATE, &short_iov) != 0) {
    printf("set-failed errno=%d\n", errno);
    kill(child, SIGKILL);
    return 0;
  }
  memset(whole, 0, sizeof whole);
  iov.iov_len = sizeof whole;
  ptrace(PTRACE_GETREGSET, child, (void *)NT_X86_XSTATE, &iov);
  unsigned char want[16];
  memset(want, 0x5a, 16);
  memcpy(&xfeatures, whole + HEADER_OFFSET, 8);
  printf("restored xmm0=%s avx=%s\n", memcmp(whole + XMM0_OFFSET, want, 16) == 0 ? "ok" : "bad", xfeatures & (1u << 2) ? "in-use" : "init");
  kill(child, SIGKILL);
  return 0;
}
