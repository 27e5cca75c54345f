package dmsnap.metrics;

import dmsnap.snapshot.InvalidationCause;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

/**
 * {@code dmsnap_snapshot_invalidations_total{device, reason}}: snapshots invalidated at run time,
 * by device name and cause ({@code io_error}: a copy, write or commit failed; {@code cow_full}:
 * no room for an exception), for alerting: the state gauge says which snapshots are invalid
 * now, but a snapshot removed after its invalidation (as a script tidying up may do) leaves no
 * state to see, while this counter keeps the event until the daemon stops. A series appears at
 * the first invalidation of a name; an instance is invalidated at most once, so it rarely
 * exceeds 1 (a refreshed or re-created snapshot of the same name may count again).
 */
final class Invalidations {
    private final Counter counter;

    Invalidations(PrometheusRegistry registry) {
        counter = Counter.builder()
                .name("dmsnap_snapshot_invalidations")
                .help("Snapshots invalidated at run time (status Invalid), by device and reason "
                        + "(io_error: a copy, write or commit failed; cow_full: no room for an exception).")
                .labelNames("device", "reason")
                .withoutExemplars()
                .register(registry);
    }

    void invalidated(String device, InvalidationCause cause) {
        counter.labelValues(device, cause.label()).inc();
    }
}
