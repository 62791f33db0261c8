/**
 * Starts one of src/oci's worker threads, from the compiled JavaScript or from the TypeScript
 * sources (tests, benches under tsx): a worker does not inherit the parent's --import hooks, so
 * from sources tsx's API loads the worker's module graph.
 */
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { siblingEntry } from '../util/sibling-entry.js';

/** `name`: a module beside this one, without extension. The worker does not keep the process alive. */
export function startOciWorker(name: string): Worker {
  const { file, nodeArgs } = siblingEntry(import.meta.url, name);
  let worker: Worker;
  if (nodeArgs.length === 0) {
    worker = new Worker(file);
  } else {
    const tsx = import.meta.resolve('tsx/esm/api');
    worker = new Worker(`import(${JSON.stringify(tsx)}).then((api) => api.tsImport(${JSON.stringify(pathToFileURL(file).href)}, ${JSON.stringify(import.meta.url)}))`, { eval: true });
  }
  worker.unref();
  return worker;
}
