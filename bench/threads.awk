# SPDX-License-Identifier: BSD-2-Clause
# Turns the results of bench/threads.sh's shm_bench run (pair, churn,
# xmalloc, larson; tab-separated, as report.awk reads them) into the tables
# of its section of docs/benchmarks.md.
#   awk -f threads.awk results-threads.tsv
# Every ratio is a heap's time per operation divided by glibc malloc's in
# the same run (lower is better); the goals compare throughputs, the
# inverse.
BEGIN {
    FS = "\t"
    nheaps = split("shm glibc mimalloc jemalloc boost mm", heap, " ")
    title["shm"] = "shm_alloc"
    title["glibc"] = "glibc malloc"
    title["mimalloc"] = "mimalloc"
    title["jemalloc"] = "jemalloc"
    title["boost"] = "Boost.Interprocess"
    title["mm"] = "OSSP mm"
}

NR == 1 { next }

$1 == "fill" { next }

{
    k = $1 SUBSEP $2
    med[k] = $5; lo[k] = $6; hi[k] = $7; param[$1] = $3
    seen[$2] = 1
    if (!($1 in row)) {
        row[$1] = 1
        rw[++nrow] = $1
    }
    if ($9 > 0 || $11 > 0) {
        nnote++
        note[nnote] = sprintf("%s %s %s: %d of %d allocations failed (%.2f%%), %d errors",
                              $1, $2, $3, $9, $10, ($10 > 0) ? 100 * $9 / $10 : 0, $11)
    }
}

function fmt(x) {
    if (x >= 100) return sprintf("%.0f", x)
    if (x >= 10) return sprintf("%.1f", x)
    return sprintf("%.2f", x)
}

function ns(w, h,    k) {
    k = w SUBSEP h
    return (k in med) && med[k] > 0 ? med[k] : -1
}

function label(w, p,    t) {
    if (w == "pair") return "pair, 1 thread"
    if (w == "churn") return "churn at " p "%, 1 thread"
    if (w == "xmalloc") {
        split(p, t, ":")
        return "producer/consumer (xmalloc), " t[1] " producers + " t[2] " consumers"
    }
    if (w == "larson") return "server simulation (larson), " p " threads"
    return w " " p
}

function header(    i, line, sep) {
    line = "| workload |"
    sep = "|---|"
    for (i = 1; i <= nheaps; i++) {
        if (!(heap[i] in seen)) continue
        line = line " " title[heap[i]] " |"
        sep = sep "---|"
    }
    print line
    print sep
}

# A goal on throughput relative to glibc malloc's: glibc's time / ours.
function goal(name, w, target,    a, b, v, met) {
    a = ns(w, "shm"); b = ns(w, "glibc")
    if (a < 0 || b < 0) {
        unmet++
        printf "| %s | >= %sx | not measured | no |\n", name, target
        return
    }
    v = b / a
    met = v >= target && failed[w] == 0
    if (!met) unmet++
    printf "| %s | >= %sx | %sx | %s |\n", name, target, fmt(v),
           met ? "**yes**" : "**no**"
}

END {
    for (i = 1; i <= nnote; i++) {
        split(note[i], part, " ")
        if (part[2] == "shm") failed[part[1]] = 1
    }
    print "| figure (shm_alloc) | goal | measured | met |"
    print "|---|---|---|---|"
    goal("producer/consumer (xmalloc): throughput / glibc malloc's", "xmalloc", 1.5)
    goal("server simulation (larson): throughput / glibc malloc's", "larson", 1)
    print ""

    print "Medians; each cell is ns per operation (a malloc + free pair; for"
    print "larson one replacement), then the ratio to glibc malloc's time on"
    print "the same workload in the same run (lower is better)."
    print ""
    header()
    for (r = 1; r <= nrow; r++) {
        w = rw[r]
        line = "| " label(w, param[w]) " |"
        base = ns(w, "glibc")
        for (i = 1; i <= nheaps; i++) {
            h = heap[i]
            if (!(h in seen)) continue
            t = ns(w, h)
            if (t < 0) cell = "-"
            else if (h == "glibc" || base <= 0) cell = fmt(t) " ns"
            else cell = fmt(t) " ns (" fmt(t / base) "x)"
            line = line " " cell " |"
        }
        print line
    }
    print ""

    print "The threaded runs depend on how the scheduler shares the two CPUs;"
    print "their spread (fastest and slowest repetition, ns per operation):"
    print ""
    header()
    for (r = 1; r <= nrow; r++) {
        w = rw[r]
        if (w != "xmalloc" && w != "larson") continue
        line = "| " label(w, param[w]) " |"
        for (i = 1; i <= nheaps; i++) {
            h = heap[i]
            if (!(h in seen)) continue
            k = w SUBSEP h
            line = line " " ((k in med) ? fmt(lo[k]) " to " fmt(hi[k]) : "-") " |"
        }
        print line
    }
    print ""

    if (nnote > 0) {
        print "Failures and errors:"
        print ""
        for (i = 1; i <= nnote; i++)
            print "- " note[i]
        print ""
    }
}
