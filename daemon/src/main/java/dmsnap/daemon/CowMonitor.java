package dmsnap.daemon;

import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.device.StatusLine;
import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.ffm.Fallocate;
import dmsnap.ffm.FileStat;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import dmsnap.table.TableLine;
import dmsnap.target.SnapshotStatus;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches snapshot COW usage (allocated / total sectors, as status shows it): a warning in the
 * log when a device crosses each configured threshold (default 80% and 95%), and, like LVM's
 * {@code snapshot_autoextend_threshold} / {@code snapshot_autoextend_percent}, growth of a
 * file-backed COW by a percentage once usage reaches the threshold (100 turns it off). The
 * store re-reads the COW size on every status and allocation, so the new room shows at once.
 *
 * <p>A COW grows as it was made. A thick one (every block allocated: an LV, or a file made with
 * {@code --preallocation falloc|full}) gets its new room allocated ({@code fallocate}), as {@code
 * lvextend} allocates extents: a sparse size would promise room a full file system does not have,
 * and the snapshot would be invalidated at its next copy instead. A growth that fails (ENOSPC) is
 * said once, at ERROR, and tried again only when the COW's file system has room for it and its
 * free space changed since; until then the checks say nothing more about it. A sparse one (made
 * with {@code truncate}, the default) grows sparse: its user chose space taken as it is used, and
 * its store allocates ahead of the chunks it uses ({@code AllocateAhead}), in the new room too. A
 * sparse COW whose store has allocated ahead to its end has no hole left and grows thick: its new
 * room would be allocated as it is used anyway.
 */
public final class CowMonitor {
    private static final Logger log = LoggerFactory.getLogger(CowMonitor.class);

    /** What happened in one check, for tests and metrics. */
    public record Event(String device, String kind, String message) {}

    /**
     * @param warnPercents       thresholds to warn at, ascending
     * @param autoextendThreshold usage in percent at which a file COW grows; >= 100 disables
     * @param autoextendPercent  growth in percent of the current size
     */
    public record Policy(int[] warnPercents, int autoextendThreshold, int autoextendPercent) {
        public static Policy defaults() {
            return new Policy(new int[] {80, 95}, 100, 20);
        }
    }

    private final DeviceManager devices;
    private final Policy policy;
    /** Highest threshold already warned about, per device name. */
    private final Map<String, Integer> warned = new HashMap<>();
    /** Devices whose COW could not grow, with the free bytes of its file system at that try. */
    private final Map<String, Long> growthFailed = new HashMap<>();

    public CowMonitor(DeviceManager devices, Policy policy) {
        this.devices = devices;
        this.policy = policy;
    }

    /** One pass over every snapshot device. */
    public synchronized List<Event> check() {
        List<Event> events = new ArrayList<>();
        for (MappedDevice d : devices.list()) {
            try {
                checkDevice(d, events);
            } catch (IOException | RuntimeException e) {
                log.debug("{}: usage check skipped: {}", d.name(), e.getMessage());
            }
        }
        return events;
    }

    private void checkDevice(MappedDevice d, List<Event> events) throws IOException {
        List<StatusLine> status = d.status(false);
        if (status.size() != 1
                || !status.getFirst().targetType().equals("snapshot")
                || !(status.getFirst().status() instanceof SnapshotStatus.Usage usage)) {
            return; // not a snapshot, or Invalid / Overflow
        }
        long allocated = usage.allocatedSectors();
        long total = usage.totalSectors();
        if (total == 0) {
            return;
        }
        double percent = 100.0 * allocated / total;
        int already = warned.getOrDefault(d.name(), 0);
        int crossed = 0;
        for (int threshold : policy.warnPercents()) {
            if (percent >= threshold) {
                crossed = threshold;
            }
        }
        if (crossed > already) {
            String message = String.format(
                    "%s: COW usage %.1f%% (%d/%d sectors) crossed %d%%", d.name(), percent, allocated, total, crossed);
            log.warn(message);
            events.add(new Event(d.name(), "warn", message));
        }
        warned.put(d.name(), crossed);
        if (policy.autoextendThreshold() < 100 && percent >= policy.autoextendThreshold()) {
            // The COW as table status names it: the real path of a file, major:minor of a block device.
            List<TableLine> table = d.printedTable(false).lines();
            if (table.size() != 1 || !table.getFirst().targetType().equals("snapshot")) {
                return; // replaced since the status above
            }
            Path cow = Path.of(table.getFirst().args().get(1));
            if (cow.isAbsolute() && Files.isRegularFile(cow)) {
                extend(d.name(), cow, percent, events);
            }
        }
    }

    private void extend(String device, Path cow, double percent, List<Event> events) throws IOException {
        // One descriptor for the whole step, opened without following a link: the size read, the
        // allocation and the new end are all of the same file.
        try (NativeFile file = NativeFile.open(cow, OpenFlag.READ_WRITE, OpenFlag.NO_FOLLOW)) {
            FileStat stat = file.stat();
            long size = stat.sizeBytes();
            long grown = size + Math.max(4096, size * policy.autoextendPercent() / 100 / 4096 * 4096);
            boolean thick = stat.allocatedBytes() >= size; // no hole: made thick (or allocated to its end)
            long free = Files.getFileStore(cow).getUsableSpace();
            Long freeAtFailure = growthFailed.get(device);
            if (freeAtFailure != null && (free == freeAtFailure || thick && free < grown - size)) {
                return; // no room yet: trying again would fail the same way
            }
            try {
                if (thick) {
                    grow(file, size, grown);
                } else {
                    growSparse(file, grown);
                }
            } catch (IOException e) {
                growthFailed.put(device, free);
                String message = String.format(
                        "%s: cannot grow COW %s from %d to %d bytes: %s", device, cow, size, grown, e.getMessage());
                if (freeAtFailure == null) {
                    log.error(message);
                } else {
                    log.debug(message);
                }
                events.add(new Event(device, "extend-failed", message));
                return;
            }
            growthFailed.remove(device);
            String message = String.format(
                    "%s: extended %s COW %s from %d to %d bytes (usage %.1f%% >= %d%%)",
                    device, thick ? "thick" : "sparse", cow, size, grown, percent, policy.autoextendThreshold());
            log.info(message);
            events.add(new Event(device, "extend", message));
        }
    }

    /** A sparse COW's new end: a hole, as {@code truncate} makes; never cut back (see {@link #grow}). */
    static void growSparse(NativeFile file, long toBytes) throws IOException {
        if (file.stat().sizeBytes() < toBytes) {
            file.truncate(toBytes);
        }
    }

    /**
     * Allocates {@code [fromBytes, toBytes)} of {@code file} beyond its end, then moves the end:
     * the store never sees a size whose room is not there. A file system without fallocate gets
     * the plain size. On failure the blocks taken so far are given back and the size stays. The
     * file only ever grows: when someone else grew it meanwhile (an administrator's truncate),
     * its end is left where it is, since cutting it back would cut off chunks in use.
     */
    static void grow(NativeFile file, long fromBytes, long toBytes) throws IOException {
        try {
            file.fallocate(Fallocate.KEEP_SIZE, fromBytes, toBytes - fromBytes);
        } catch (ErrnoException e) {
            if (e.errno() != Errno.EOPNOTSUPP) {
                if (file.stat().sizeBytes() == fromBytes) {
                    file.truncate(fromBytes); // frees what the failed call allocated past the end
                }
                throw e;
            }
        }
        if (file.stat().sizeBytes() < toBytes) {
            file.truncate(toBytes);
        }
    }
}
