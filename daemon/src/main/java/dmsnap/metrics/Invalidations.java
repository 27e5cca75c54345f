package dmsnap.metrics;

import dmsnap.snapshot.InvalidationCause;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.util.EnumMap;
import java.util.Map;

/**
 * {@code dmsnap_snapshot_invalidations_total{reason}}: snapshots invalidated at run time, by
 * cause ({@code io_error}: a copy, write or commit failed; {@code cow_full}: no room for an
 * exception), for alerting on {@code increase(...) > 0}. Both series exist from the start at 0.
 * The state gauge says which snapshots are invalid now; this counter also keeps the event of a
 * snapshot removed since (a script tidying up invalid snapshots leaves no state to see). It has
 * no device label because a removed device leaves no series behind (as every per-device metric
 * here), and the one ERROR line of each invalidation names the device.
 */
final class Invalidations {
    private final Map<InvalidationCause, CounterDataPoint> byCause = new EnumMap<>(InvalidationCause.class);

    Invalidations(PrometheusRegistry registry) {
        Counter counter = Counter.builder()
                .name("dmsnap_snapshot_invalidations")
                .help("Snapshots invalidated at run time (status Invalid), by reason "
                        + "(io_error: a copy, write or commit failed; cow_full: no room for an exception).")
                .labelNames("reason")
                .withoutExemplars()
                .register(registry);
        for (InvalidationCause cause : InvalidationCause.values()) {
            byCause.put(cause, counter.labelValues(cause.label()));
        }
    }

    void invalidated(InvalidationCause cause) {
        byCause.get(cause).inc();
    }
}
