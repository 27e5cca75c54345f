package dmsnap.target;

import dmsnap.table.TableLoadException;

/** A named constructor of targets, with its version as {@code dmsetup targets} prints it. */
public interface TargetType {
    String name();

    /** "1.9.0" style. */
    String version();

    /**
     * Builds a target from its arguments.
     *
     * @throws TableLoadException with the kernel's sentence when the arguments or devices are refused
     */
    Target create(TargetContext context, TargetArgs args) throws TableLoadException;

    /** What builds a target from its arguments; see {@link #create}. */
    @FunctionalInterface
    interface Constructor {
        Target create(TargetContext context, TargetArgs args) throws TableLoadException;
    }

    /** A target type named {@code name} at {@code version} whose targets {@code constructor} builds. */
    static TargetType of(String name, String version, Constructor constructor) {
        return new TargetType() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public String version() {
                return version;
            }

            @Override
            public Target create(TargetContext context, TargetArgs args) throws TableLoadException {
                return constructor.create(context, args);
            }
        };
    }
}
