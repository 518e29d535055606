/* SPDX-License-Identifier: MIT */
/*
 * procstat.h: the CPU time a process has used, from /proc/PID/stat, for the load generators
 * of bench/ that report a server's CPU per message (ws-loadgen, hub-load). A static function
 * in a header, as in loadgen.h: each program stays one translation unit.
 */
#ifndef SN_BENCH_PROCSTAT_H
#define SN_BENCH_PROCSTAT_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* CPU seconds (user + system) process pid (0: this one) has used, or -1. */
static inline double proc_cpu_s(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, pid ? "/proc/%ld/stat" : "/proc/self/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    unsigned long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

#endif
