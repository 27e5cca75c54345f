package dmsnap.metrics;

import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.device.StatusLine;
import dmsnap.target.SnapshotStatus;
import io.prometheus.metrics.model.registry.MultiCollector;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot.GaugeDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * COW usage and state of every {@code snapshot} and {@code snapshot-merge} device, label
 * {@code device}, computed at scrape time from the live table's status ({@link SnapshotStatus}),
 * what {@code dmsetup status} prints (spec 6.1): {@code <allocated>/<total> <metadata>} or one
 * of {@code Invalid}, {@code Merge failed}, {@code Overflow}. Reading status rather than the
 * snapshot objects keeps this independent of how a target is built (snapshot-merge included),
 * and it takes the device's control lock as {@code dmsetup status} does, so a table being
 * destroyed is never read. An invalid or overflowed snapshot shows no usage numbers, as its
 * status has none.
 * A table with several lines of one type (unusual) reports their sums and the worst state.
 */
final class CowStatusCollector implements MultiCollector {
    private static final Logger log = LoggerFactory.getLogger(CowStatusCollector.class);

    /** The state label's values, in order of precedence (a later one wins when lines differ). */
    private static final List<String> SNAPSHOT_STATES = List.of("valid", "overflow", "invalid");

    private static final List<String> MERGE_STATES = List.of("merging", "overflow", "failed", "invalid");

    /** One device's lines of one target type, added up. */
    private static final class Cow {
        final String device;
        long allocatedSectors;
        long totalSectors;
        long metadataSectors;
        boolean hasUsage;
        int state = -1;

        Cow(String device) {
            this.device = device;
        }
    }

    private final DeviceManager devices;

    CowStatusCollector(DeviceManager devices) {
        this.devices = devices;
    }

    @Override
    public MetricSnapshots collect() {
        List<Cow> snapshots = new ArrayList<>();
        List<Cow> merges = new ArrayList<>();
        for (MappedDevice d : devices.list()) {
            List<StatusLine> lines;
            try {
                lines = d.status(false);
            } catch (IOException e) {
                // Reported by the next dmsetup status; a scrape just leaves the device out.
                log.debug("{}: no COW metrics this scrape: {}", d.name(), e.getMessage());
                continue;
            }
            Cow snapshot = null;
            Cow merge = null;
            for (StatusLine line : lines) {
                if (!(line.status() instanceof SnapshotStatus status)) {
                    continue;
                }
                switch (line.targetType()) {
                    case "snapshot" -> {
                        snapshot = snapshot != null ? snapshot : new Cow(d.name());
                        add(snapshot, status, SNAPSHOT_STATES, "valid");
                    }
                    case "snapshot-merge" -> {
                        merge = merge != null ? merge : new Cow(d.name());
                        add(merge, status, MERGE_STATES, "merging");
                    }
                    default -> {}
                }
            }
            if (snapshot != null) {
                snapshots.add(snapshot);
            }
            if (merge != null) {
                merges.add(merge);
            }
        }
        MetricSnapshots.Builder out = MetricSnapshots.builder();
        usage(out, "dmsnap_snapshot", snapshots);
        out.metricSnapshot(state(
                "dmsnap_snapshot_state",
                "1 for the snapshot's state as status shows it (valid: usage numbers), 0 for the others.",
                SNAPSHOT_STATES,
                snapshots));
        usage(out, "dmsnap_merge", merges);
        GaugeSnapshot.Builder remaining = GaugeSnapshot.builder()
                .name("dmsnap_merge_remaining_sectors")
                .help("COW data sectors still to merge (allocated - metadata); 0 when the merge is complete.");
        for (Cow c : merges) {
            if (c.hasUsage) {
                remaining.dataPoint(point(c.device, c.allocatedSectors - c.metadataSectors));
            }
        }
        out.metricSnapshot(remaining.build());
        out.metricSnapshot(state(
                "dmsnap_merge_state",
                "1 for the merging snapshot's state as status shows it (merging: usage numbers; failed: Merge failed), "
                        + "0 for the others.",
                MERGE_STATES,
                merges));
        return out.build();
    }

    /** Folds one status into {@code cow}; {@code numbers} is the state usage numbers mean. */
    private static void add(Cow cow, SnapshotStatus status, List<String> states, String numbers) {
        String state = switch (status) {
            case SnapshotStatus.Invalid i -> "invalid";
            case SnapshotStatus.Overflow o -> "overflow";
            case SnapshotStatus.MergeFailed m -> "failed";
            case SnapshotStatus.Usage usage -> {
                cow.allocatedSectors += usage.allocatedSectors();
                cow.totalSectors += usage.totalSectors();
                cow.metadataSectors += usage.metadataSectors();
                cow.hasUsage = true;
                yield numbers;
            }
        };
        cow.state = Math.max(cow.state, states.indexOf(state));
    }

    private static void usage(MetricSnapshots.Builder out, String prefix, List<Cow> cows) {
        GaugeSnapshot.Builder allocated = GaugeSnapshot.builder()
                .name(prefix + "_cow_allocated_sectors")
                .help("COW sectors allocated, header and metadata included (status <allocated>).");
        GaugeSnapshot.Builder total = GaugeSnapshot.builder()
                .name(prefix + "_cow_total_sectors")
                .help("COW device size in sectors (status <total>).");
        GaugeSnapshot.Builder metadata = GaugeSnapshot.builder()
                .name(prefix + "_cow_metadata_sectors")
                .help("COW header and metadata area sectors (status <metadata>).");
        for (Cow c : cows) {
            if (c.hasUsage) {
                allocated.dataPoint(point(c.device, c.allocatedSectors));
                total.dataPoint(point(c.device, c.totalSectors));
                metadata.dataPoint(point(c.device, c.metadataSectors));
            }
        }
        out.metricSnapshot(allocated.build());
        out.metricSnapshot(total.build());
        out.metricSnapshot(metadata.build());
    }

    private static GaugeSnapshot state(String name, String help, List<String> states, List<Cow> cows) {
        GaugeSnapshot.Builder gauge = GaugeSnapshot.builder().name(name).help(help);
        for (Cow c : cows) {
            if (c.state < 0) {
                continue;
            }
            for (int i = 0; i < states.size(); i++) {
                gauge.dataPoint(GaugeDataPointSnapshot.builder()
                        .labels(Labels.of("device", c.device, "state", states.get(i)))
                        .value(i == c.state ? 1 : 0)
                        .build());
            }
        }
        return gauge.build();
    }

    private static GaugeDataPointSnapshot point(String device, long value) {
        return GaugeDataPointSnapshot.builder()
                .labels(Labels.of("device", device))
                .value(value)
                .build();
    }
}
