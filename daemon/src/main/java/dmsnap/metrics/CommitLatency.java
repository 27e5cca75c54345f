package dmsnap.metrics;

import dmsnap.snapshot.CommitObserver;
import dmsnap.store.ExceptionStore;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.Unit;

/**
 * The exception commit latency histogram: from a snapshot's commit request to its store's
 * callback (the exception is durable, or failed). One histogram for the daemon with a
 * {@code store} label ({@code persistent}: P/PO, whose commits wait for the COW's flush, several
 * sharing one; {@code transient}: N, which completes at once) rather than one per device: the
 * latency is the COW storage's flush path, a per-device histogram would multiply the bucket
 * series by the number of snapshots, and a snapshot instance is replaced on every refresh, so a
 * device label would have to follow handovers and renames into the store's callback. The two
 * labelled children are looked up once, here.
 */
final class CommitLatency implements CommitObserver {
    /** 50 µs (a page-cache flush) to 2.5 s (a stalled disk). */
    private static final double[] BOUNDS_SECONDS = {
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5
    };

    private final DistributionDataPoint persistent;
    private final DistributionDataPoint transientStore;
    private final CounterDataPoint persistentFailures;
    private final CounterDataPoint transientFailures;

    CommitLatency(PrometheusRegistry registry) {
        Histogram latency = Histogram.builder()
                .name("dmsnap_exception_commit_seconds")
                .unit(Unit.SECONDS)
                .help("Exception commit latency: commit request to the store's durable (or failed) callback.")
                .labelNames("store")
                .classicOnly()
                .classicUpperBounds(BOUNDS_SECONDS)
                .withoutExemplars()
                .register(registry);
        Counter failures = Counter.builder()
                .name("dmsnap_exception_commit_failures")
                .help("Exception commits that failed (the snapshot was invalidated).")
                .labelNames("store")
                .withoutExemplars()
                .register(registry);
        persistent = latency.labelValues("persistent");
        transientStore = latency.labelValues("transient");
        persistentFailures = failures.labelValues("persistent");
        transientFailures = failures.labelValues("transient");
    }

    @Override
    public void committed(ExceptionStore store, long latencyNanos, boolean success) {
        boolean isPersistent = store.typeLetter().equals("P");
        (isPersistent ? persistent : transientStore).observe(Unit.nanosToSeconds(latencyNanos));
        if (!success) {
            (isPersistent ? persistentFailures : transientFailures).inc();
        }
    }
}
