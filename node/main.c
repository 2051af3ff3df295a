/* merpati: the command-line entry point. The CLI lands in the next commits. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "usage: merpati <command> [flags]\n");
    return 64;
}
