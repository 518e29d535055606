/* SPDX-License-Identifier: MIT */
/*
 * procstat.h: the CPU time a process has used, from /proc/PID/stat, for the load generators
 * of bench/ that report a server's CPU per message (sn-loadgen, ws-loadgen, hub-load), and
 * the context switches its threads have made. Static functions in a header, as in loadgen.h:
 * each program stays one translation unit.
 */
#ifndef SN_BENCH_PROCSTAT_H
#define SN_BENCH_PROCSTAT_H

#include <dirent.h>
#include <stdint.h>
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

/* Context switches all the threads of process pid (0: this one) have made, from
 * /proc/PID/task/TID/status, or -1; *voluntary gets those made by waiting (sleeps), the rest
 * being preemptions and yields. A thread that ended takes its counts with it: read over a
 * window in which the process keeps its threads. */
static inline long long proc_ctxsw(long pid, long long *voluntary)
{
    char path[96], line[128];
    snprintf(path, sizeof path, pid ? "/proc/%ld/task" : "/proc/self/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long long sum = 0, vol = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sp[160];
        snprintf(sp, sizeof sp, "%s/%.20s/status", path, e->d_name);
        FILE *f = fopen(sp, "r");
        if (!f)
            continue; /* the thread ended meanwhile */
        while (fgets(line, sizeof line, f)) {
            long long n;
            if (sscanf(line, "voluntary_ctxt_switches: %lld", &n) == 1) {
                sum += n;
                vol += n;
            } else if (sscanf(line, "nonvoluntary_ctxt_switches: %lld", &n) == 1) {
                sum += n;
            }
        }
        fclose(f);
    }
    closedir(d);
    *voluntary = vol;
    return sum;
}

/* A measured window: the CPU time of a server (pid) and of this process, and the server's
 * context switches, read at its start and its end (proc_window_read twice). */
struct proc_window {
    long pid;
    double cpu[2][2];  /* [server, this process][start, end] */
    long long csw[2];  /* the server's, [start, end] */
    long long vcsw[2]; /* the voluntary ones among them */
    int reads;
};

static inline void proc_window_read(struct proc_window *w)
{
    if (w->reads > 1)
        return;
    w->cpu[0][w->reads] = proc_cpu_s(w->pid);
    w->cpu[1][w->reads] = proc_cpu_s(0);
    w->csw[w->reads] = proc_ctxsw(w->pid, &w->vcsw[w->reads]);
    w->reads++;
}

/* A count per exchange, never below 0. */
static inline double per_exchange(double delta, uint64_t n)
{
    return delta < 0 ? 0 : delta / (double)n;
}

/* Appends " server_cpu_us=S client_cpu_us=C server_csw=X server_sleeps=V" (each per exchange,
 * of n; V: the voluntary switches among X) to the result line on out; 0 on success, -1 when a
 * figure could not be read (said on stderr). */
static inline int proc_window_print(const struct proc_window *w, uint64_t n, FILE *out)
{
    if (w->reads != 2 || w->cpu[0][0] < 0 || w->cpu[0][1] < 0 || w->cpu[1][0] < 0 ||
        w->cpu[1][1] < 0 || w->csw[0] < 0 || w->csw[1] < 0 || n == 0) {
        fprintf(stderr, "cannot read the CPU time or context switches of process %ld\n", w->pid);
        return -1;
    }
    double s_us = per_exchange((w->cpu[0][1] - w->cpu[0][0]) * 1e6, n);
    double c_us = per_exchange((w->cpu[1][1] - w->cpu[1][0]) * 1e6, n);
    double csw = per_exchange((double)(w->csw[1] - w->csw[0]), n);
    double vcsw = per_exchange((double)(w->vcsw[1] - w->vcsw[0]), n);
    fprintf(out, " server_cpu_us=%.2f client_cpu_us=%.2f server_csw=%.3f server_sleeps=%.3f", s_us,
            c_us, csw, vcsw);
    fprintf(stderr,
            "CPU per exchange: server %.2f us, this client %.2f us; server context switches "
            "per exchange %.3f, of which sleeps %.3f\n",
            s_us, c_us, csw, vcsw);
    return 0;
}

#endif
