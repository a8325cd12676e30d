/* A stand-in program for the gate tests: main() appends "main" to $FAKE_MARKER (proof that it
 * ran), then sleeps $FAKE_SLEEP seconds (none when unset) and exits. Built with -DFINGERPRINT='"…"' (the catalog's markers, passed at build time so
 * no test binary carries them) it looks like a real AI tool's binary to content identity. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef FINGERPRINT
__attribute__((used)) static const char fingerprint[] = FINGERPRINT;
#endif

int main(void) {
    const char *marker = getenv("FAKE_MARKER");
    if (marker) {
        FILE *f = fopen(marker, "a");
        if (f) {
            fputs("main\n", f);
            fclose(f);
        }
    }
    const char *seconds = getenv("FAKE_SLEEP");
    if (seconds) {
        sleep((unsigned)atoi(seconds));
    }
    return 0;
}
