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
}
