/**
 * Files to add to an image as a cached layer of its own (ProviderDefinition.imageWithFiles):
 * this host's node for benchmark function workloads, say, so clones need no upload.
 */
export interface LayerFiles {
  /** What the layer adds, in the image name: "node-v20.20.2-linux-x64". */
  tag: string;
  /** Absolute dir in the guest the files go into. */
  guestDir: string;
  files: ReadonlyArray<{ hostPath: string; relativePath: string; mode: number }>;
  /** Changes whenever the files do. */
  identity: string;
}
