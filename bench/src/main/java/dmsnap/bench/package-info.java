/**
 * JMH benchmarks. Trial-level setup opens devices; per-thread state owns confined arenas; no
 * assertions. See bench/README.md for the run lines and bench/RESULTS.md for recorded numbers.
 */
package dmsnap.bench;
