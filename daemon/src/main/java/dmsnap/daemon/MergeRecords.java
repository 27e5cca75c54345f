package dmsnap.daemon;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/**
 * The records of the merges {@link MergeFlows} looks after: one {@code ORIGIN.merge} file per
 * flow in the state directory, Java properties written atomically through {@link StateStore}.
 * The keys ({@code origin}, {@code snapshot}, {@code cow}, {@code started}, {@code totalBytes})
 * and the comment line are what state directories already hold: change them only compatibly.
 * Without a state directory nothing is recorded and nothing restored.
 */
final class MergeRecords {
    private static final String SUFFIX = ".merge";

    private final StateStore state;

    /**
     * A flow's record: the merge of {@code snapshot} (whose COW is {@code cow}) into the device
     * {@code origin}; {@code started} once the origin's snapshot-merge table went live, with
     * {@code totalBytes} then on the COW (what the percentage counts from).
     */
    record Entry(String origin, String snapshot, String cow, boolean started, long totalBytes) {}

    /**
     * @param state the state directory, or null (then nothing is recorded)
     */
    MergeRecords(StateStore state) {
        this.state = state;
    }

    /** Every recorded flow (an empty list without a state directory). */
    List<Entry> loadAll() throws IOException {
        if (state == null) {
            return List.of();
        }
        List<Entry> all = new ArrayList<>();
        for (Properties p : state.loadAll(SUFFIX)) {
            all.add(new Entry(
                    p.getProperty("origin"),
                    p.getProperty("snapshot"),
                    p.getProperty("cow"),
                    Boolean.parseBoolean(p.getProperty("started", "false")),
                    Long.parseLong(p.getProperty("totalBytes", "0"))));
        }
        return all;
    }

    /** Records (or replaces) the flow of {@code e.origin()}, atomically. */
    void write(Entry e) throws IOException {
        if (state == null) {
            return;
        }
        Properties p = new Properties();
        p.setProperty("origin", e.origin());
        p.setProperty("snapshot", e.snapshot());
        p.setProperty("cow", e.cow());
        p.setProperty("started", Boolean.toString(e.started()));
        p.setProperty("totalBytes", Long.toString(e.totalBytes()));
        state.writeAtomically(e.origin() + SUFFIX, p, "dmsnap merge of " + e.snapshot() + " into " + e.origin());
    }

    /** Drops the record of the flow of {@code origin}, if there is one. */
    void delete(String origin) throws IOException {
        if (state != null) {
            state.delete(origin + SUFFIX);
        }
    }
}
