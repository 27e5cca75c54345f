package dmsnap.metrics;

import dmsnap.store.copy.ChunkCopier;
import io.prometheus.metrics.model.registry.MultiCollector;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.CounterSnapshot.CounterDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import io.prometheus.metrics.model.snapshots.Unit;

/**
 * The chunk copier's totals (dmsnap's kcopyd, one per daemon): the copy-outs origin writes and
 * partial snapshot writes trigger, read at scrape time from {@link ChunkCopier#stats()}. One copy
 * reads an origin chunk once and writes it into every snapshot of that chunk size that needs it.
 */
final class CopierCollector implements MultiCollector {
    private final ChunkCopier copier;

    CopierCollector(ChunkCopier copier) {
        this.copier = copier;
    }

    @Override
    public MetricSnapshots collect() {
        ChunkCopier.Stats s = copier.stats();
        return MetricSnapshots.of(
                counter(
                        "dmsnap_chunk_copies",
                        "Chunk copies finished (one source read, any number of COWs written).",
                        null,
                        point(s.copies(), Labels.EMPTY)),
                counter(
                        "dmsnap_chunk_copy_read_bytes",
                        "Bytes chunk copies read from their source.",
                        Unit.BYTES,
                        point(s.readBytes(), Labels.EMPTY)),
                counter(
                        "dmsnap_chunk_copy_written_bytes",
                        "Bytes chunk copies wrote, each destination counted.",
                        Unit.BYTES,
                        point(s.writtenBytes(), Labels.EMPTY)),
                counter(
                        "dmsnap_chunk_copy_errors",
                        "Failed chunk copy I/O: op=read a source read (nothing written), op=write one destination.",
                        null,
                        point(s.readErrors(), Labels.of("op", "read")),
                        point(s.writeErrors(), Labels.of("op", "write"))));
    }

    private static CounterSnapshot counter(String name, String help, Unit unit, CounterDataPointSnapshot... points) {
        CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
        if (unit != null) {
            b.unit(unit);
        }
        for (CounterDataPointSnapshot p : points) {
            b.dataPoint(p);
        }
        return b.build();
    }

    private static CounterDataPointSnapshot point(long value, Labels labels) {
        return CounterDataPointSnapshot.builder().labels(labels).value(value).build();
    }
}
