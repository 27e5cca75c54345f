/**
 * Tables as dmsetup writes them: ordered {@link dmsnap.table.TableLine}s of
 * {@code <start> <length> <target> <args...>} covering {@code [0, length)} without gaps, parsed
 * and printed by {@link dmsnap.table.TableParser}. Mirrors the text side of {@code dm-table.c}.
 * Immutable values; no locks.
 */
package dmsnap.table;
