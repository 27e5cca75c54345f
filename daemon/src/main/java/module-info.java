/**
 * dmsnap's daemon and command line: targets, tables, mapped devices, the NBD and control
 * servers, and the picocli CLI with {@code main}.
 */
module dmsnap.daemon {
    requires dmsnap.store;
    requires info.picocli;
    requires org.slf4j;
    requires com.fasterxml.jackson.databind;

    // The engine is usable embedded (and by the benchmarks): tables, targets, devices, snapshots.
    exports dmsnap.table;
    exports dmsnap.target;
    exports dmsnap.device;
    exports dmsnap.snapshot;

    // picocli fills command fields reflectively.
    opens dmsnap.cli to info.picocli;
}
