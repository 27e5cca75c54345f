/**
 * dmsnap's daemon and command line: targets, tables, mapped devices, the NBD and control
 * servers, and the picocli CLI with {@code main}.
 */
module dmsnap.daemon {
    requires dmsnap.store;
    requires info.picocli;
    requires org.slf4j;
    requires com.fasterxml.jackson.databind;
    requires jdk.net;
    // --metrics: the Prometheus client (automatic modules); its HTTP server is the JDK's.
    requires io.prometheus.metrics.core;
    requires io.prometheus.metrics.model;
    requires io.prometheus.metrics.exporter.httpserver;
    requires jdk.httpserver;
    requires jdk.unsupported; // sun.misc.Signal: SIGTERM/SIGINT stop the daemon in order and exit 0

    // The engine is usable embedded (and by the benchmarks): tables, targets, devices, snapshots.
    exports dmsnap.table;
    exports dmsnap.target;
    exports dmsnap.device;
    exports dmsnap.snapshot;
    exports dmsnap.control;
    exports dmsnap.daemon;
    exports dmsnap.nbd;

    // picocli fills command fields reflectively; Jackson reads the --json records of the CLI.
    opens dmsnap.cli to info.picocli, com.fasterxml.jackson.databind;
}
