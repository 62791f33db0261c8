/**
 * The report page's script, inlined into report.html as written (no network, works from
 * file://). It reads the run from <script type="application/json" id="macvm-data"> and renders
 * only what is needed: suites in batches as the reader scrolls, a test's details only when it is
 * opened, images with loading="lazy". All text from results goes in through textContent, never
 * innerHTML, so a test name like <img onerror=…> stays text. Filter and search live in the URL
 * hash (#?status=failed&q=boot) so a filtered view can be linked.
 *
 * Plain ES2017 in one function expression, so it runs in any current browser without a build
 * step; type-checked with JSDoc by src/report/browser/tsconfig.json (DOM, no Node).
 */

/** @import { PageData, PageSuite, PageTest } from './page-data.js' */
/** @import { Artifact, ErrorInfo, SnapshotArtifact, TestStatus } from '../../shared/results.js' */
/** @typedef {'all' | TestStatus} Filter */
/** @typedef {'diff' | 'actual' | 'expected' | 'side' | 'slider'} View */
/** @typedef {{ suite: PageSuite, tests: PageTest[] }} Group */
/** @typedef {Node | string | null | undefined | false} Child */

(function () {
  'use strict';
  if (window.performance && performance.mark) performance.mark('macvm-script-start');
  /** @type {PageData} */
  var data = JSON.parse(byId('macvm-data').textContent || '{"suites":[]}');
  /** @type {Filter[]} */
  var STATUSES = ['all', 'failed', 'flaky', 'passed', 'skipped'];
  /** @type {Record<TestStatus, string>} */
  var ICONS = { passed: '✓', failed: '✕', flaky: '⟳', skipped: '–' };
  var BATCH_TESTS = 150;
  // Failed tests shown open on first render; beyond this many they wait for a click.
  var OPEN_FAILURES = 10;
  var openedFailures = 0;
  /** @type {{ status: Filter, q: string }} */
  var state = { status: 'all', q: '' };
  var list = byId('suites');
  var shown = byId('shown');
  var search = /** @type {HTMLInputElement} */ (byId('search'));
  /** @type {Group[]} */
  var pending = [];
  /** @type {IntersectionObserver | null} */
  var observer = null;

  /**
   * An element the page's HTML always has (html.ts writes them).
   * @param {string} id
   * @returns {HTMLElement}
   */
  function byId(id) {
    var node = document.getElementById(id);
    if (!node) throw new Error('macvm report: #' + id + ' is missing');
    return node;
  }

  /**
   * @template {keyof HTMLElementTagNameMap} K
   * @param {K} tag
   * @param {Record<string, string | number | boolean | null | undefined> | null} [attrs]
   *   className and text set those properties; true is an empty attribute; null, undefined
   *   and false leave the attribute out.
   * @param {Child[]} [children]
   * @returns {HTMLElementTagNameMap[K]}
   */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) for (var key in attrs) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) continue;
      if (key === 'className') node.className = String(value);
      else if (key === 'text') node.textContent = String(value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }

  /** @param {string} path */
  function url(path) {
    // Each segment percent-encoded: "#", "?" and a "javascript:" prefix stay part of the path.
    return path.replace(/\\/g, '/').split('/').map(encodeURIComponent).join('/');
  }

  /** @param {number} ms */
  function duration(ms) {
    if (!(ms >= 0)) return '–';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    return Math.floor(ms / 60000) + ' m ' + Math.round((ms % 60000) / 1000) + ' s';
  }

  /** @param {number} mib */
  function memory(mib) {
    if (!mib) return '';
    return mib >= 1024 ? (mib % 1024 === 0 ? mib / 1024 : (mib / 1024).toFixed(1)) + ' GiB' : mib + ' MiB';
  }

  /** @param {PageTest} test @param {PageSuite} suite */
  function testLabel(test, suite) {
    var prefix = suite.name + ' › ';
    var full = test.fullName || test.name;
    return suite.name && full.indexOf(prefix) === 0 ? full.slice(prefix.length) : full;
  }

  /** @param {PageSuite} suite */
  function failedRank(suite) {
    return suite.status === 'failed' ? 0 : 1;
  }

  // ---- hash <-> state ----
  /**
   * @param {string | null} value
   * @returns {value is Filter}
   */
  function isFilter(value) {
    return STATUSES.some(function (status) { return status === value; });
  }
  function readHash() {
    var params = new URLSearchParams(location.hash.replace(/^#\??/, ''));
    var status = params.get('status') || 'all';
    state.status = isFilter(status) ? status : 'all';
    state.q = params.get('q') || '';
  }
  function writeHash() {
    var params = new URLSearchParams();
    if (state.status !== 'all') params.set('status', state.status);
    if (state.q) params.set('q', state.q);
    var hash = params.toString();
    var next = hash ? '#?' + hash : location.pathname + location.search;
    if ((hash ? '#?' + hash : '') !== location.hash) history.replaceState(null, '', next);
  }

  // ---- filtering ----
  /** @returns {{ groups: Group[], tests: number }} */
  function matches() {
    var q = state.q.trim().toLowerCase();
    /** @type {Group[]} */
    var out = [];
    var testCount = 0;
    data.suites.forEach(function (suite) {
      var suiteHit = !q || (suite.name + ' ' + suite.file).toLowerCase().indexOf(q) >= 0;
      var tests = suite.tests.filter(function (test) {
        if (state.status !== 'all' && test.status !== state.status) return false;
        return suiteHit || (test.fullName || test.name).toLowerCase().indexOf(q) >= 0;
      });
      // A suite that failed outside its tests (boot failure) is itself a failure to show.
      var suiteError = suite.error && (state.status === 'all' || state.status === 'failed') && suiteHit;
      if (tests.length > 0 || suiteError) {
        out.push({ suite: suite, tests: tests });
        testCount += tests.length;
      }
    });
    // Failures first: a reader opens the report to see what broke (the order is stable otherwise).
    out.sort(function (a, b) { return failedRank(a.suite) - failedRank(b.suite); });
    return { groups: out, tests: testCount };
  }

  function render() {
    document.querySelectorAll('.filter').forEach(function (button) {
      button.setAttribute('aria-pressed', String(button.getAttribute('data-status') === state.status));
    });
    if (search.value !== state.q) search.value = state.q;
    var result = matches();
    list.textContent = '';
    pending = result.groups.slice();
    shown.textContent = result.tests + ' test' + (result.tests === 1 ? '' : 's') + ' in ' + result.groups.length + ' suite' + (result.groups.length === 1 ? '' : 's');
    if (pending.length === 0) {
      list.appendChild(el('p', { className: 'empty', text: data.suites.length === 0 ? 'This run has no suites.' : 'No tests match this filter.' }));
      return;
    }
    renderMore();
  }

  // Renders suites until about BATCH_TESTS rows were added, then leaves a sentinel that
  // renders the next batch when it scrolls into view (or when its button is pressed).
  function renderMore() {
    var old = document.getElementById('more');
    if (old) old.remove();
    var added = 0;
    var fragment = document.createDocumentFragment();
    while (added < BATCH_TESTS) {
      var group = pending.shift();
      if (!group) break;
      fragment.appendChild(renderSuite(group.suite, group.tests));
      added += Math.max(1, group.tests.length);
    }
    list.appendChild(fragment);
    if (pending.length > 0) {
      var button = el('button', { type: 'button', text: 'Show more (' + pending.length + ' more suites)' });
      button.addEventListener('click', renderMore);
      var more = el('div', { className: 'more', id: 'more' }, [button]);
      list.appendChild(more);
      if (observer) observer.observe(more);
    }
  }

  if ('IntersectionObserver' in window) {
    observer = new IntersectionObserver(function (entries, self) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { self.unobserve(entry.target); renderMore(); }
      });
    }, { rootMargin: '800px 0px' });
  }

  // ---- suites and tests ----
  /** @param {PageSuite} suite @param {PageTest[]} tests */
  function renderSuite(suite, tests) {
    var vm = suite.vm;
    /** @type {HTMLElement[]} */
    var facts = [];
    if (vm) {
      [vm.provider, vm.image, vm.guestOs, vm.cpus ? vm.cpus + ' CPU' : '', memory(vm.memoryMiB),
        vm.bootMs ? 'boot ' + duration(vm.bootMs) : '', vm.readyMs ? 'ready ' + duration(vm.readyMs) : '', vm.vmId]
        .forEach(function (fact) { if (fact) facts.push(el('span', { className: 'chip', text: fact })); });
      if (vm.consoleLog) facts.push(el('a', { className: 'chip', href: url(vm.consoleLog), target: '_blank', text: 'console log' }));
    }
    // The VM facts already link its console log; the same file among the artifacts is not listed twice.
    var suiteArtifacts = (suite.artifacts || []).filter(function (a) { return !(vm && vm.consoleLog && a.path === vm.consoleLog); });
    var head = el('header', { className: 'suite-head' }, [
      el('span', { className: 'dot s-' + suite.status, title: suite.status }),
      el('h3', { text: suite.name }),
      suite.file ? el('span', { className: 'file', text: suite.file }) : null,
      el('span', { className: 'duration', text: duration(suite.durationMs) }),
    ]);
    var items = tests.map(function (test) { return renderTest(test, suite); });
    var otherArtifacts = suiteArtifacts.length ? el('div', { className: 'suite-error' }, [renderArtifacts(suiteArtifacts)]) : null;
    return el('section', { className: 'suite', 'data-status': suite.status, 'data-suite-id': suite.id }, [
      head,
      el('div', { className: 'vm-facts' }, facts),
      suite.error ? el('div', { className: 'suite-error' }, [renderError(suite.error, 'Suite failed outside its tests')]) : null,
      otherArtifacts,
      items.length ? el('ul', { className: 'tests' }, items) : null,
    ]);
  }

  /** @param {PageTest} test @param {PageSuite} suite */
  function renderTest(test, suite) {
    var label = testLabel(test, suite);
    /** @type {HTMLElement[]} */
    var badges = [];
    var retries = test.retries || 0;
    if (test.status === 'flaky') badges.push(el('span', { className: 'badge t-flaky', text: retries ? 'flaky · ' + retries + (retries === 1 ? ' retry' : ' retries') : 'flaky' }));
    var snaps = (test.artifacts || []).filter(function (a) { return a.snapshot; }).length;
    if (snaps) badges.push(el('span', { className: 'badge t-flaky', text: snaps === 1 ? 'snapshot' : snaps + ' snapshots' }));
    var error = test.error;
    var artifacts = test.artifacts;
    var expandable = !!error || (artifacts !== undefined && artifacts.length > 0);
    var nameBlock = el('span', { className: 'name' }, [label,
      error && error.message ? el('span', { className: 'preview', text: error.message.split('\n')[0] }) : null]);
    /** @type {HTMLElement[]} */
    var rowChildren = [
      el('span', { className: 'chev', 'aria-hidden': 'true', text: expandable ? '›' : '' }),
      el('span', { className: 'icon t-' + test.status, title: test.status, text: ICONS[test.status] || '?' }),
      nameBlock,
    ].concat(badges, [el('span', { className: 'duration', text: duration(test.durationMs) })]);
    if (!expandable) {
      return el('li', { 'data-status': test.status, 'data-test-id': test.id }, [el('div', { className: 'test-row' }, rowChildren)]);
    }
    var details = el('details', { className: 'test', 'data-status': test.status, 'data-test-id': test.id }, [
      el('summary', { className: 'test-row' }, rowChildren),
    ]);
    // The body (errors, images) is built the first time the test is opened; failed tests open
    // with it, the first few of the run at least, so the reason is on screen without a click.
    function openBody() {
      if (details.querySelector('.test-body')) return;
      details.appendChild(el('div', { className: 'test-body' }, [
        error ? renderError(error, null) : null,
        artifacts && artifacts.length ? renderArtifacts(artifacts) : null,
      ]));
    }
    details.addEventListener('toggle', function () {
      if (details.open) openBody();
    });
    if (test.status === 'failed' && openedFailures < OPEN_FAILURES) {
      openedFailures++;
      details.open = true;
      openBody();
    }
    return el('li', null, [details]);
  }

  /** @param {ErrorInfo} error @param {string | null} title */
  function renderError(error, title) {
    var consoleLines = error.consoleTail ? error.consoleTail.split('\n').length : 0;
    return el('div', { className: 'error-box' }, [
      title ? el('strong', { text: title }) : null,
      error.code ? el('span', { className: 'code', text: error.code }) : null,
      el('pre', { className: 'message', text: error.message || '(no message)' }),
      error.stack ? el('details', { className: 'stack' }, [el('summary', { text: 'Stack trace' }), el('pre', { text: error.stack })]) : null,
      error.consoleTail ? el('details', { className: 'console-tail' }, [
        el('summary', { text: 'Guest console, last ' + consoleLines + ' line' + (consoleLines === 1 ? '' : 's') }),
        el('pre', { text: error.consoleTail }),
      ]) : null,
    ]);
  }

  /** @param {Artifact[]} artifacts */
  function renderArtifacts(artifacts) {
    /** @type {HTMLElement[]} */
    var links = [];
    /** @type {HTMLElement[]} */
    var blocks = [];
    artifacts.forEach(function (artifact) {
      if (artifact.snapshot) blocks.push(renderSnapshot(artifact.snapshot, artifact.name));
      else if (artifact.kind === 'screenshot' || artifact.kind === 'snapshot' || /^image\//.test(artifact.contentType || '')) {
        blocks.push(el('figure', { className: 'screenshot' }, [
          el('figcaption', { text: artifact.name || artifact.path }),
          el('a', { href: url(artifact.path), target: '_blank' }, [el('img', { src: url(artifact.path), alt: artifact.name || artifact.path, loading: 'lazy' })]),
        ]));
      } else {
        links.push(el('a', { className: 'chip', href: url(artifact.path), target: '_blank', text: (artifact.kind === 'console-log' ? 'console log: ' : '') + (artifact.name || artifact.path) }));
      }
    });
    return el('div', { className: 'artifacts' }, blocks.concat(links.length ? [el('div', { className: 'artifact-links' }, links)] : []));
  }

  // ---- snapshot viewer ----
  /** @type {Array<{ view: View, label: string }>} */
  var VIEWS = [
    { view: 'diff', label: 'Diff' },
    { view: 'actual', label: 'Actual' },
    { view: 'expected', label: 'Expected' },
    { view: 'side', label: 'Side by side' },
    { view: 'slider', label: 'Slider' },
  ];

  /** @param {string} path @param {string} alt @param {SnapshotArtifact} snap @param {string} [className] */
  function image(path, alt, snap, className) {
    return el('img', { src: url(path), alt: alt, loading: 'lazy', width: snap.width || undefined, height: snap.height || undefined, className: className });
  }

  /** @param {string} text */
  function missing(text) { return el('p', { className: 'empty', text: text }); }

  /** @param {SnapshotArtifact} snap @param {string} artifactName */
  function renderSnapshot(snap, artifactName) {
    var name = snap.name || artifactName || 'snapshot';
    var panel = el('div', { className: 'snap-view', role: 'tabpanel' });
    var tabs = el('div', { className: 'snap-tabs', role: 'tablist', 'aria-label': 'Views of ' + name });
    var buttons = VIEWS.map(function (view) {
      var button = el('button', { type: 'button', role: 'tab', 'data-view': view.view, 'aria-selected': 'false', tabindex: '-1', text: view.label });
      button.addEventListener('click', function () { select(view.view); });
      tabs.appendChild(button);
      return button;
    });
    tabs.addEventListener('keydown', function (event) {
      var index = buttons.findIndex(function (b) { return b === document.activeElement; });
      if (index < 0) return;
      var next = event.key === 'ArrowRight' ? index + 1 : event.key === 'ArrowLeft' ? index - 1 : event.key === 'Home' ? 0 : event.key === 'End' ? buttons.length - 1 : -2;
      if (next === -2) return;
      event.preventDefault();
      next = (next + buttons.length) % buttons.length;
      var view = VIEWS[next];
      var button = buttons[next];
      if (!view || !button) return;
      select(view.view);
      button.focus();
    });
    /** @param {View} view */
    function select(view) {
      buttons.forEach(function (b) {
        var on = b.getAttribute('data-view') === view;
        b.setAttribute('aria-selected', String(on));
        b.setAttribute('tabindex', on ? '0' : '-1');
      });
      panel.setAttribute('data-view', view);
      panel.textContent = '';
      panel.appendChild(renderView(snap, view, name));
    }
    var ratio = (snap.diffRatio * 100);
    var head = el('div', { className: 'snap-head' }, [
      el('strong', { text: name }),
      el('span', { className: 'muted small', text: snap.diffPixels + ' px differ (' + (ratio < 0.01 && ratio > 0 ? ratio.toExponential(1) : ratio.toFixed(2)) + ' %) · ' + snap.width + '×' + snap.height }),
      snap.expected ? null : el('span', { className: 'warning small', text: 'no baseline existed' }),
      snap.environmentMismatch ? el('span', { className: 'warning small', text: 'baseline from another environment: ' + snap.environmentMismatch }) : null,
      // A pass across environments: the pixels decided, this only explains (so muted, not a warning).
      snap.environmentNote ? el('span', { className: 'muted small environment-note', text: snap.environmentNote }) : null,
    ]);
    var box = el('div', { className: 'snap', 'data-snapshot': name }, [head, tabs, panel]);
    select(snap.diff ? 'diff' : 'actual');
    return box;
  }

  /** @param {SnapshotArtifact} snap @param {View} view @param {string} name @returns {HTMLElement} */
  function renderView(snap, view, name) {
    if (view === 'diff') return snap.diff ? el('div', { className: 'single' }, [image(snap.diff, name + ' (diff)', snap)]) : missing('No diff image (nothing to compare against).');
    if (view === 'actual') return el('div', { className: 'single' }, [image(snap.actual, name + ' (actual)', snap)]);
    if (view === 'expected') return snap.expected ? el('div', { className: 'single' }, [image(snap.expected, name + ' (expected)', snap)]) : missing('No baseline existed for this snapshot.');
    if (view === 'side') {
      return el('div', { className: 'side-by-side' }, [
        el('figure', null, [el('figcaption', { text: 'Expected' }), snap.expected ? image(snap.expected, name + ' (expected)', snap) : missing('No baseline.')]),
        el('figure', null, [el('figcaption', { text: 'Actual' }), image(snap.actual, name + ' (actual)', snap)]),
      ]);
    }
    if (!snap.expected) return missing('No baseline existed, so there is nothing to slide against.');
    return renderSlider(snap, snap.expected, name);
  }

  // Expected underneath, actual on top clipped at the divider: left of it is actual, right is
  // expected. The range input is the accessible control (arrow keys, Home/End); dragging on
  // the picture moves the same input.
  /** @param {SnapshotArtifact} snap @param {string} expected @param {string} name */
  function renderSlider(snap, expected, name) {
    var under = image(expected, name + ' (expected)', snap, 'under');
    var over = image(snap.actual, name + ' (actual)', snap, 'over');
    var divider = el('div', { className: 'divider', 'aria-hidden': 'true' });
    var frame = el('div', { className: 'slider-frame' }, [under, over, divider]);
    var input = el('input', { type: 'range', min: '0', max: '100', step: '1', value: '50', 'aria-label': 'Divider position: actual on the left, expected on the right' });
    var readout = el('span', { className: 'readout', text: '50 %' });
    function apply() {
      var v = Number(input.value);
      over.style.clipPath = 'inset(0 ' + (100 - v) + '% 0 0)';
      divider.style.left = v + '%';
      readout.textContent = v + ' %';
      input.setAttribute('aria-valuetext', v + ' % actual');
    }
    input.addEventListener('input', apply);
    var dragging = false;
    /** @param {PointerEvent} event */
    function fromPointer(event) {
      var box = frame.getBoundingClientRect();
      if (box.width <= 0) return;
      input.value = String(Math.round(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * 100));
      apply();
    }
    frame.addEventListener('pointerdown', function (event) {
      dragging = true;
      if (frame.setPointerCapture) frame.setPointerCapture(event.pointerId);
      fromPointer(event);
      event.preventDefault();
    });
    frame.addEventListener('pointermove', function (event) { if (dragging) fromPointer(event); });
    frame.addEventListener('pointerup', function () { dragging = false; input.focus(); });
    frame.addEventListener('pointercancel', function () { dragging = false; });
    apply();
    return el('div', { className: 'slider' }, [
      frame,
      el('div', { className: 'slider-controls' }, [el('span', { text: 'Actual' }), input, el('span', { text: 'Expected' }), readout]),
    ]);
  }

  // ---- controls ----
  document.querySelectorAll('.filter').forEach(function (button) {
    button.addEventListener('click', function () {
      var status = button.getAttribute('data-status');
      state.status = isFilter(status) ? status : 'all';
      writeHash();
      render();
    });
  });
  /** @type {number | undefined} */
  var searchTimer;
  search.addEventListener('input', function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      state.q = search.value;
      writeHash();
      render();
    }, 120);
  });
  window.addEventListener('hashchange', function () { readHash(); render(); });
  readHash();
  render();
  document.documentElement.setAttribute('data-rendered', 'true');
  // Lets tests and bench/report-size.ts read the time to first render.
  if (window.performance && performance.mark) performance.mark('macvm-rendered');
})();
