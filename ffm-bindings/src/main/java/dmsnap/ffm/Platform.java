package dmsnap.ffm;

import dmsnap.ffm.internal.LinuxConstants;

/** Whether this machine is one the native bindings were generated for. */
public final class Platform {
    private Platform() {}

    /**
     * Throws {@link UnsupportedOperationException} with a one-line explanation on any OS or
     * architecture other than the one the jextract bindings were generated for. Call it at startup.
     */
    public static void requireSupported() {
        LinuxConstants.requireSupportedPlatform();
    }

    /** "Linux amd64" style: what the bindings were generated for. */
    public static String bindingsTarget() {
        return "Linux " + LinuxConstants.generatedArch();
    }
}
