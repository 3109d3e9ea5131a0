/* us_sig.c -- see us_sig.h. */
#include "us_sig.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm.h"

#define BIT(s) (UINT64_C(1) << ((s) - 1))

/* Default action: stop the task, or nothing. */
static const uint64_t NOT_AN_INTERRUPTION = BIT(SIGSTOP) | BIT(SIGTSTP) | BIT(SIGTTIN) | BIT(SIGTTOU) |
                                            BIT(SIGCHLD) | BIT(SIGCONT) | BIT(SIGURG) | BIT(SIGWINCH);

bool us_sig_interrupting(uint64_t pend, uint64_t blk, uint64_t ign, uint64_t cgt)
{
        uint64_t p = pend & ~blk;

        if (pend & BIT(SIGKILL))
                return true;
        /* Taken by a handler, or ending the task by default. */
        return (p & cgt) || (p & ~ign & ~cgt & ~NOT_AN_INTERRUPTION);
}

/* The hex mask after "\nNAME:" in a /proc status text; false if absent. */
static bool mask_of(const char *text, const char *name, uint64_t *ret)
{
        const char *p = strstr(text, name);
        char *end;

        if (!p)
                return false;
        *ret = strtoull(p + strlen(name), &end, 16);
        return end != p + strlen(name);
}

bool us_sig_interrupts(pid_t tid)
{
        char path[64], text[4096];
        uint64_t pnd, shd, blk, ign, cgt;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
        if (cm_read_file(path, text, sizeof(text)) < 0)
                return true;
        if (!mask_of(text, "\nSigPnd:", &pnd) || !mask_of(text, "\nShdPnd:", &shd) ||
            !mask_of(text, "\nSigBlk:", &blk) || !mask_of(text, "\nSigIgn:", &ign) ||
            !mask_of(text, "\nSigCgt:", &cgt))
                return true;
        return us_sig_interrupting(pnd | shd, blk, ign, cgt);
}
