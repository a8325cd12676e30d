/* An exec flood from one process: executes itself argv[1] times over, counting down, so the
 * kernel sends that many exec notices as fast as it can exec (no fork per notice). Used to
 * overflow a stopped agent's notice queue (ENOBUFS). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long left = argc > 1 ? atol(argv[1]) : 0;
    if (left <= 0) {
        return 0;
    }
    char next[32];
    snprintf(next, sizeof next, "%ld", left - 1);
    execl("/proc/self/exe", argv[0], next, (char *)0);
    return 127;
}
