/**
 * The control socket ({@code RUN_DIR/control.sock}): one JSON request per connection, one JSON
 * response (for {@code changed}, the extents streamed between two: {@link dmsnap.control.ChangedStream}),
 * for every dmsetup verb, and {@code merge} / {@code merge-status} for the daemon's
 * merge flow ({@link dmsnap.control.MergeService}). {@link dmsnap.control.ControlServer} executes requests on
 * the engine; {@link dmsnap.control.ControlClient} is what the CLI uses. Requests, responses and
 * their data ({@link dmsnap.control.ResponseData}) are records bound to JSON by
 * {@link dmsnap.control.Json}, the daemon's one JSON configuration and its reading limits. Peers are checked with
 * SO_PEERCRED: root or the daemon's own user. The role of {@code dm-ioctl.c}.
 */
package dmsnap.control;
