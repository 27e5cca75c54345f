/**
 * dmsnap's daemon and command line: the NBD and control servers, state, metrics, LVM flows and
 * the picocli CLI with {@code main}, over the engine (module dmsnap.engine).
 */
module dmsnap.daemon {
    // Its API hands out engine types (Daemon.devices() is a DeviceManager).
    requires transitive dmsnap.engine;
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

    exports dmsnap.control;
    exports dmsnap.daemon;
    exports dmsnap.nbd;
    exports dmsnap.net;

    // picocli fills command fields reflectively; Jackson reads the --json records of the CLI.
    opens dmsnap.cli to
            info.picocli,
            com.fasterxml.jackson.databind;
}
