/**
 * Linking: {@link dmsnap.ffm.internal.LibC} holds the downcall handles (linked once, with
 * {@code captureCallState("errno")}), {@link dmsnap.ffm.internal.Syscalls} the errno capture,
 * {@link dmsnap.ffm.internal.LinuxConstants} the values taken from the jextract-generated
 * bindings for the running architecture. Not exported.
 */
package dmsnap.ffm.internal;
