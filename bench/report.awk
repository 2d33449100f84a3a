# Turns shm_bench's tab-separated results into the tables of
# docs/benchmarks.md, and writes the data files of the plots.
#   awk -v cpus=N -v procdat=FILE -v filldat=FILE -f report.awk results.tsv
# Every ratio is a heap's time per operation divided by glibc malloc's in
# the same run (lower is better; throughputs are turned into times).
# The processes runs also give CPU time per operation, from which the
# scaling an idle machine with `cpus` CPUs would show is estimated:
# min(P, cpus) * cpu(1) / cpu(P).
BEGIN {
    FS = "\t"
    nheaps = split("shm glibc mm boost", heap, " ")
    title["shm"] = "shm_alloc"
    title["glibc"] = "glibc malloc"
    title["mm"] = "OSSP mm"
    title["boost"] = "Boost.Interprocess"
}

NR == 1 { next }

{
    k = $1 SUBSEP $2 SUBSEP $3
    med[k] = $5; lo[k] = $6; hi[k] = $7; fails[k] = $9; allocs[k] = $10
    errs[k] = $11
    seen[$2] = 1
    if (!(($1 SUBSEP $3) in row)) {
        row[$1 SUBSEP $3] = 1
        nrow++
        rw[nrow] = $1; rp[nrow] = $3
    }
    if ($9 > 0 || $11 > 0) {
        nnote++
        note[nnote] = sprintf("%s %s %s: %d of %d allocations failed (%.2f%%), %d errors",
                              $1, $2, $3, $9, $10, ($10 > 0) ? 100 * $9 / $10 : 0, $11)
    }
}

function has(w, h, p) { return (w SUBSEP h SUBSEP p) in med }

# Time per operation in ns, or -1 when not measured.
function ns(w, h, p,    k) {
    k = w SUBSEP h SUBSEP p
    if (!(k in med) || med[k] <= 0)
        return -1
    return w == "processes" ? 1000 / med[k] : med[k]
}

function label(w, p) {
    if (w == "pair") return "pair, 1 process"
    if (w == "churn") return "churn at " p "%, 1 process"
    if (w == "processes") return "churn at the processes fill, " p \
        (p == 1 ? " process" : " processes") " (aggregate)"
    if (w == "handoff") return "handoff between 2 processes"
    return w " " p
}

function fmt(x) {
    if (x >= 100) return sprintf("%.0f", x)
    if (x >= 10) return sprintf("%.1f", x)
    return sprintf("%.2f", x)
}

# A goal row; fail_pct > 0 (allocations that failed in the runs behind the
# figure, in %) makes the figure invalid: it is shown, and the goal is not
# met.
function goal(name, value, op, target, unit, fail_pct,    met, extra) {
    if (value < 0) {
        unmet++
        printf "| %s | %s %s%s | not measured | no |\n", name, op, target, unit
        return
    }
    met = (op == "<=") ? value <= target : value >= target
    extra = ""
    if (fail_pct > 0) {
        met = 0
        extra = sprintf(" (%.2f%% of the allocations failed)", fail_pct)
    }
    if (!met) unmet++
    printf "| %s | %s %s%s | %s%s%s | %s |\n", name, op, target, unit,
           fmt(value), unit, extra, met ? "**yes**" : "**no**"
}

# Share of the allocations that failed, in %.
function failed(w, h, p,    k) {
    k = w SUBSEP h SUBSEP p
    return (k in fails) && allocs[k] > 0 ? 100 * fails[k] / allocs[k] : 0
}

function ratio(a, b) { return (a < 0 || b <= 0) ? -1 : a / b }

# Scaling of heap h from 1 to p processes that CPU time predicts for an
# idle machine, or -1.
function idle_scaling(h, p,    k1, kp) {
    k1 = "processes_cpu" SUBSEP h SUBSEP "1"
    kp = "processes_cpu" SUBSEP h SUBSEP p
    if (!(k1 in med) || !(kp in med) || med[kp] <= 0 || cpus <= 0)
        return -1
    return (p < cpus ? p : cpus) * med[k1] / med[kp]
}

function goal_scaling(p, target,    v, e, met) {
    v = ratio(ns("processes", "shm", "1"), ns("processes", "shm", p))
    e = idle_scaling("shm", p)
    if (v < 0) {
        unmet++
        printf "| churn, %s processes / 1 process: throughput | >= %sx | not measured | no |\n", p, target
        return
    }
    met = v >= target
    if (!met) unmet++
    printf "| churn, %s processes / 1 process: throughput | >= %sx | %sx", p, target, fmt(v)
    if (e >= 0)
        printf " (CPU time predicts %sx on an idle machine)", fmt(e)
    printf " | %s |\n", met ? "**yes**" : (e >= target ? "**no** (yes by CPU time)" : "**no**")
}

END {
    print "### Figures against the goals"
    print ""
    print "| figure (shm_alloc) | goal | measured | met |"
    print "|---|---|---|---|"
    goal("pair, 1 process: time per operation / glibc malloc's",
         ratio(ns("pair", "shm", "-"), ns("pair", "glibc", "-")), "<=", 1.3, "x",
         failed("pair", "shm", "-"))
    goal("churn at 60%, 1 process: time / glibc malloc's",
         ratio(ns("churn", "shm", "60"), ns("churn", "glibc", "60")), "<=", 1.0, "x",
         failed("churn", "shm", "60"))
    goal("churn at 80% / our own churn at 30%",
         ratio(ns("churn", "shm", "80"), ns("churn", "shm", "30")), "<=", 1.5, "x",
         failed("churn", "shm", "80") + failed("churn", "shm", "30"))
    goal_scaling("2", 1.8)
    goal_scaling("4", 1.7)
    k = "fill" SUBSEP "shm" SUBSEP "-"
    goal("fill until the first failure: requested bytes / capacity",
         (k in med) ? med[k] : -1, ">=", 88, "%", 0)
    k = "fill_min4" SUBSEP "shm" SUBSEP "-"
    goal("fill, sizes 16..64 at MIN = 4 (bench/run.sh: build-bench-min4)",
         (k in med) ? med[k] : -1, ">=", 78, "%", 0)
    k = ""
    for (key in med) {
        split(key, part, SUBSEP)
        if (part[1] == "meta") k = key
    }
    goal("metadata / capacity (MIN = 5)", k == "" ? -1 : med[k], "<=", 2.5, "%", 0)
    print ""
    if (unmet > 0) {
        print "Not met: " unmet " of 8. \"Where shm_alloc spends its time\" below"
        print "says why, from the profile."
        print ""
    }

    print "### Time per operation, and ratio to glibc malloc"
    print ""
    print "Medians; each cell is ns per operation, then the ratio to glibc"
    print "malloc's time on the same workload in the same run."
    print ""
    line = "| workload |"
    sep = "|---|"
    for (i = 1; i <= nheaps; i++) {
        if (!(heap[i] in seen)) continue
        line = line " " title[heap[i]] " |"
        sep = sep "---|"
    }
    print line
    print sep
    for (r = 1; r <= nrow; r++) {
        w = rw[r]; p = rp[r]
        if (w == "fill" || w == "fill_min4" || w == "meta" || w == "processes_cpu") continue
        line = "| " label(w, p) " |"
        base = ns(w, "glibc", p)
        for (i = 1; i <= nheaps; i++) {
            h = heap[i]
            if (!(h in seen)) continue
            t = ns(w, h, p)
            if (t < 0) cell = "-"
            else if (h == "glibc" || base <= 0) cell = fmt(t) " ns"
            else cell = fmt(t) " ns (" fmt(t / base) "x)"
            line = line " " cell " |"
        }
        print line
    }
    print ""

    hdr = "x"
    for (i = 1; i <= nheaps; i++)
        if (heap[i] in seen) hdr = hdr " \"" title[heap[i]] "\""
    if (procdat != "") print hdr > procdat
    if (filldat != "") print hdr > filldat

    print "### Scaling with processes (aggregate throughput)"
    print ""
    line = "| processes |"
    sep = "|---|"
    for (i = 1; i <= nheaps; i++) {
        if (!(heap[i] in seen)) continue
        line = line " " title[heap[i]] " |"
        sep = sep "---|"
    }
    print line
    print sep
    for (r = 1; r <= nrow; r++) {
        if (rw[r] != "processes") continue
        p = rp[r]
        line = "| " p " |"
        dat = p
        for (i = 1; i <= nheaps; i++) {
            h = heap[i]
            if (!(h in seen)) continue
            k = "processes" SUBSEP h SUBSEP p
            k1 = "processes" SUBSEP h SUBSEP "1"
            if (!(k in med)) { line = line " - |"; dat = dat " NaN"; continue }
            cell = fmt(med[k]) " Mops/s"
            if ((k1 in med) && med[k1] > 0)
                cell = cell " (" fmt(med[k] / med[k1]) "x)"
            line = line " " cell " |"
            dat = dat " " med[k]
        }
        print line
        if (procdat != "") print dat > procdat
    }
    print ""
    print "In parentheses: throughput relative to the same heap with 1 process."
    print "glibc malloc's processes each have their own private heap: the"
    print "scaling a shared heap would have if it cost nothing to share (and"
    print "each of its processes holds a smaller, denser live set)."
    print ""
    print "CPU time per operation in the same runs, and the scaling it predicts"
    print "for an idle machine with " cpus " CPUs (min(P, CPUs) x CPU time at 1 /"
    print "CPU time at P). It shows what sharing costs each process, whether or"
    print "not the machine had a core free for every process. A heap that makes"
    print "processes sleep on a lock (OSSP mm, Boost) looks better here than it"
    print "is: time asleep is not CPU time."
    print ""
    line = "| processes |"
    sep = "|---|"
    for (i = 1; i <= nheaps; i++) {
        if (!(heap[i] in seen)) continue
        line = line " " title[heap[i]] " |"
        sep = sep "---|"
    }
    print line
    print sep
    for (r = 1; r <= nrow; r++) {
        if (rw[r] != "processes_cpu") continue
        p = rp[r]
        line = "| " p " |"
        for (i = 1; i <= nheaps; i++) {
            h = heap[i]
            if (!(h in seen)) continue
            k = "processes_cpu" SUBSEP h SUBSEP p
            if (!(k in med)) { line = line " - |"; continue }
            e = idle_scaling(h, p)
            line = line " " fmt(med[k]) " ns" (e >= 0 ? " (" fmt(e) "x)" : "") " |"
        }
        print line
    }
    print ""

    for (r = 1; r <= nrow; r++) {
        if (rw[r] != "churn") continue
        dat = rp[r]
        for (i = 1; i <= nheaps; i++) {
            h = heap[i]
            if (!(h in seen)) continue
            t = ns("churn", h, rp[r])
            dat = dat " " (t > 0 ? 1000 / t : "NaN")
        }
        if (filldat != "") print dat > filldat
    }

    print "### Fill until the first failure"
    print ""
    print "| heap | requested bytes received / capacity |"
    print "|---|---|"
    for (i = 1; i <= nheaps; i++) {
        k = "fill" SUBSEP heap[i] SUBSEP "-"
        if (k in med)
            printf "| %s | %s%% |\n", title[heap[i]], fmt(med[k])
    }
    print ""

    if (nnote > 0) {
        print "### Failures and errors"
        print ""
        for (i = 1; i <= nnote; i++)
            print "- " note[i]
        print ""
        print "A failed allocation in churn leaves its slot empty until it is"
        print "picked again; an error is data not seen by the consumer, a heap"
        print "found inconsistent after a run, or a worker that did not finish."
        print ""
    }
}
