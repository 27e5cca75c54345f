package dmsnap.metrics;

import dmsnap.device.DeviceManager;
import dmsnap.device.IoStats;
import dmsnap.device.MappedDevice;
import io.prometheus.metrics.model.registry.MultiCollector;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.CounterSnapshot.CounterDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import io.prometheus.metrics.model.snapshots.Unit;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * Per mapped device I/O counters, label {@code device}: read at scrape time from each device's
 * {@link IoStats}, so the I/O path only bumps its own adders and the label is the device's name
 * at that moment: a renamed device continues under its new name and a removed one is gone.
 */
final class DeviceIoCollector implements MultiCollector {
    private record Series(String name, String help, Unit unit, ToLongFunction<IoStats.Totals> value) {}

    private static final List<Series> SERIES = List.of(
            new Series(
                    "dmsnap_device_reads",
                    "Read requests completed (failed ones included).",
                    null,
                    IoStats.Totals::reads),
            new Series(
                    "dmsnap_device_read_bytes",
                    "Bytes of completed read requests.",
                    Unit.BYTES,
                    IoStats.Totals::readBytes),
            new Series(
                    "dmsnap_device_cached_reads",
                    "Read requests served from the page cache without waiting (RWF_NOWAIT, on the NBD connection's thread).",
                    null,
                    IoStats.Totals::cachedReads),
            new Series(
                    "dmsnap_device_writes",
                    "Write and write-zeroes requests completed (failed ones included).",
                    null,
                    IoStats.Totals::writes),
            new Series(
                    "dmsnap_device_written_bytes",
                    "Bytes of completed write and write-zeroes requests.",
                    Unit.BYTES,
                    IoStats.Totals::writtenBytes),
            new Series("dmsnap_device_flushes", "Flush requests completed.", null, IoStats.Totals::flushes),
            new Series("dmsnap_device_discards", "Discard requests completed.", null, IoStats.Totals::discards),
            new Series(
                    "dmsnap_device_discarded_bytes",
                    "Bytes of completed discard requests.",
                    Unit.BYTES,
                    IoStats.Totals::discardedBytes),
            new Series(
                    "dmsnap_device_io_errors",
                    "Requests that failed with an I/O error.",
                    null,
                    IoStats.Totals::errors));

    private final DeviceManager devices;

    DeviceIoCollector(DeviceManager devices) {
        this.devices = devices;
    }

    @Override
    public MetricSnapshots collect() {
        List<MappedDevice> all = devices.list();
        Labels[] labels = new Labels[all.size()];
        IoStats.Totals[] totals = new IoStats.Totals[all.size()];
        for (int i = 0; i < all.size(); i++) {
            labels[i] = Labels.of("device", all.get(i).name());
            totals[i] = all.get(i).ioStats().totals();
        }
        MetricSnapshots.Builder out = MetricSnapshots.builder();
        for (Series s : SERIES) {
            CounterSnapshot.Builder counter =
                    CounterSnapshot.builder().name(s.name()).help(s.help());
            if (s.unit() != null) {
                counter.unit(s.unit());
            }
            for (int i = 0; i < totals.length; i++) {
                counter.dataPoint(CounterDataPointSnapshot.builder()
                        .labels(labels[i])
                        .value(s.value().applyAsLong(totals[i]))
                        .build());
            }
            out.metricSnapshot(counter.build());
        }
        return out.build();
    }
}
