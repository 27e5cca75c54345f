/** JMH benchmarks of dmsnap's devices, stores and targets; built into benchmarks.jar, never run by the build. */
module dmsnap.bench {
    requires dmsnap.store;
    requires dmsnap.engine;
    requires jmh.core;

    exports dmsnap.bench;
}
