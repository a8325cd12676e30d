/* A stand-in for an AI tool's native binary in the process-monitor tests.
 * main() appends "main <pid>" to $FAKE_MARKER (proof that the program got that far),
 * starts $FAKE_CHILD as a child when set (a wrapper and its real tool), then sleeps.
 * Built with -DFINGERPRINT='"…"' it carries those bytes, as a real tool's binary carries the
 * markers of its catalog fingerprint. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef FINGERPRINT
__attribute__((used)) static const char fingerprint[] = FINGERPRINT;
#endif

int main(int argc, char **argv) {
    const char *marker = getenv("FAKE_MARKER");
    if (marker) {
        FILE *f = fopen(marker, "a");
        if (f) {
            fprintf(f, "main %d\n", (int)getpid());
            fclose(f);
        }
    }
    const char *child = getenv("FAKE_CHILD");
    if (child && fork() == 0) {
        unsetenv("FAKE_CHILD");
        execl(child, child, "exec", "child", (char *)0);
        _exit(127);
    }
    const char *seconds = getenv("FAKE_SLEEP");
    sleep(seconds ? (unsigned)atoi(seconds) : 30);
    (void)argc;
    (void)argv;
    return 0;
}
