package dmsnap.metrics;

import static org.junit.jupiter.api.Assertions.assertFalse;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.net.ListenAddress;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.SnapshotStatus;
import dmsnap.target.Target;
import dmsnap.target.TargetContext;
import dmsnap.target.TargetStatus;
import dmsnap.target.TargetType;
import dmsnap.target.TargetTypes;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;

/**
 * COW metrics come from target status, whatever builds the target: stand-in {@code snapshot}
 * and {@code snapshot-merge} targets report the statuses of spec 6.1 and 9.5 (the real merge
 * target is built elsewhere), scraped over HTTP.
 */
class CowStatusCollectorTest {
    /** What each stand-in target's INFO status says, by its one argument. */
    private static final Map<String, TargetStatus> STATUS = new ConcurrentHashMap<>();

    private static TargetType standIn(String name) {
        return new TargetType() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public String version() {
                return "0.0.0";
            }

            @Override
            public Target create(TargetContext context, dmsnap.target.TargetArgs args) {
                String key = args.next();
                return new Target() {
                    @Override
                    public String typeName() {
                        return name;
                    }

                    @Override
                    public void map(IoRequest io) {}

                    @Override
                    public dmsnap.target.Allocation allocation(long sector, long maxSectors) {
                        return dmsnap.target.Allocation.data(maxSectors);
                    }

                    @Override
                    public TargetStatus status() {
                        return STATUS.get(key);
                    }

                    @Override
                    public List<String> tableArgs() {
                        return List.of(key);
                    }

                    @Override
                    public void close() {}
                };
            }
        };
    }

    @Test
    void mergeProgressAndStatesFollowTheStatusOfSnapshotMergeDevices() throws Exception {
        TargetTypes types = TargetTypes.withBasicTargets();
        types.register(standIn("snapshot-merge"));
        types.register(standIn("snapshot"));
        DeviceManager dm = new DeviceManager(types, new BackingDevices());
        try (ChunkCopier copier = new ChunkCopier(1, 4096);
                DaemonMetrics metrics = new DaemonMetrics(copier)) {
            int port = metrics.serve(new ListenAddress("127.0.0.1", 0), dm);
            STATUS.put("m", new SnapshotStatus.Usage(40, 8192, 16));
            STATUS.put("s", new SnapshotStatus.Overflow());
            STATUS.put("two-a", new SnapshotStatus.Usage(24, 100, 16));
            STATUS.put("two-b", new SnapshotStatus.Invalid());
            dm.create("merging", null, TableParser.parse("0 100 snapshot-merge m"));
            dm.create("full", null, TableParser.parse("0 100 snapshot s"));
            dm.create("two", null, TableParser.parse("0 100 snapshot two-a\n100 100 snapshot two-b\n"));
            dm.create("plain", null, TableParser.parse("0 100 zero"));

            Scrape s = Scrape.of(port);
            s.expect("dmsnap_merge_cow_allocated_sectors{device=\"merging\"}", 40);
            s.expect("dmsnap_merge_cow_total_sectors{device=\"merging\"}", 8192);
            s.expect("dmsnap_merge_cow_metadata_sectors{device=\"merging\"}", 16);
            s.expect("dmsnap_merge_remaining_sectors{device=\"merging\"}", 24);
            s.expect("dmsnap_merge_state{device=\"merging\",state=\"merging\"}", 1);
            s.expect("dmsnap_merge_state{device=\"merging\",state=\"failed\"}", 0);
            s.expect("dmsnap_merge_state{device=\"merging\",state=\"invalid\"}", 0);
            s.expect("dmsnap_snapshot_state{device=\"full\",state=\"overflow\"}", 1);
            s.expect("dmsnap_snapshot_state{device=\"full\",state=\"valid\"}", 0);
            assertFalse(s.series().containsKey("dmsnap_snapshot_cow_allocated_sectors{device=\"full\"}"));
            // Two snapshot lines in one table: the numbers of the valid one, the worse state.
            s.expect("dmsnap_snapshot_cow_allocated_sectors{device=\"two\"}", 24);
            s.expect("dmsnap_snapshot_state{device=\"two\",state=\"invalid\"}", 1);
            s.expect("dmsnap_snapshot_state{device=\"two\",state=\"valid\"}", 0);
            assertFalse(s.text().contains("merge_state{device=\"full\""), "a snapshot is not a merge");
            assertFalse(s.text().contains("snapshot_state{device=\"merging\""), "a merge is not a snapshot");
            assertFalse(s.text().contains("state{device=\"plain\""), "no COW, no COW metrics");

            STATUS.put("m", new SnapshotStatus.Usage(16, 8192, 16));
            Scrape done = Scrape.of(port);
            done.expect("dmsnap_merge_remaining_sectors{device=\"merging\"}", 0);
            STATUS.put("m", new SnapshotStatus.MergeFailed());
            Scrape failed = Scrape.of(port);
            failed.expect("dmsnap_merge_state{device=\"merging\",state=\"failed\"}", 1);
            failed.expect("dmsnap_merge_state{device=\"merging\",state=\"merging\"}", 0);
            assertFalse(failed.series().containsKey("dmsnap_merge_remaining_sectors{device=\"merging\"}"));
            STATUS.put("m", new SnapshotStatus.Invalid());
            Scrape.of(port).expect("dmsnap_merge_state{device=\"merging\",state=\"invalid\"}", 1);
        } finally {
            for (var d : dm.list()) {
                dm.remove(d.name(), true);
            }
        }
    }
}
