/**
 * dmsnap's daemon and command line: targets, tables, mapped devices, the NBD and control
 * servers, and the picocli CLI with {@code main}.
 */
module dmsnap.daemon {
    requires dmsnap.store;
    requires info.picocli;
    requires org.slf4j;
    requires com.fasterxml.jackson.databind;

    // picocli fills command fields reflectively.
    opens dmsnap.cli to info.picocli;
}
