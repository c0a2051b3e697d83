// Runs the delivery-portal shared library and the Jenkinsfile outside Jenkins, for tests/deploy_assets.
//
//   groovy harness.groovy check <library dir> <Jenkinsfile>   compile src/, vars/ and the Jenkinsfile; JSON errors
//   groovy harness.groovy run <library dir> <config.json>     run scenarios; each is either a small script calling
//                                                             the vars/ steps, or a whole Jenkinsfile
//
// "run" imitates the handful of pipeline steps the library uses (sh, echo, sleep, writeFile, readFile, fileExists,
// pwd, dir, deleteDir, withEnv, withCredentials, string, libraryResource, unstable, error) closely enough to
// execute the real steps: sh runs the real shell script (so the resource script's curl really calls the test's
// loopback portal) unless a scenario's canned rule answers for a tool that is not here (docker, trivy, ansible...);
// withCredentials binds the secret into the environment like Jenkins does. For a Jenkinsfile, the Pipeline class
// below imitates the declarative semantics it relies on. The steps' own Groovy is unchanged; only Jenkins' CPS
// transformation and its sandbox are absent.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.customizers.ImportCustomizer

File here = new File(getClass().protectionDomain.codeSource.location.path).parentFile
String mode = args[0]
File library = new File(args[1])

GroovyClassLoader loader = new GroovyClassLoader(getClass().classLoader)
loader.addClasspath(new File(here, 'stubs').path)
loader.addClasspath(new File(library, 'src').path)

if (mode == 'check') {
    Map errors = [:]
    List<File> files = []
    new File(library, 'src').eachFileRecurse { if (it.name.endsWith('.groovy')) { files << it } }
    new File(library, 'vars').eachFile { if (it.name.endsWith('.groovy')) { files << it } }
    files << new File(args[2])
    files.each { File file ->
        CompilerConfiguration config = new CompilerConfiguration()
        // Jenkins adds this import to every Jenkinsfile (that is how "@Library('name') _" resolves).
        config.addCompilationCustomizers(new ImportCustomizer().addImports('org.jenkinsci.plugins.workflow.libs.Library'))
        CompilationUnit unit = new CompilationUnit(config, null, loader)
        unit.addSource(file)
        try {
            unit.compile(Phases.CANONICALIZATION)
            errors[file.path] = null
        } catch (Exception e) {
            errors[file.path] = e.message
        }
    }
    println JsonOutput.toJson(errors)
    return
}

// ---- mode "run" -------------------------------------------------------------------------------------------------
// config: {"output": path, "scenarios": [{name, workspace, env, params, credentials, currentResult, script}]}
class AbortException extends IOException {
    AbortException(String message) { super(message) }
}

Map config = new JsonSlurper().parse(new File(args[2])) as Map
GroovyShell shell = new GroovyShell(loader)
Map<String, Script> steps = [:]
new File(library, 'vars').eachFile { File file ->
    if (file.name.endsWith('.groovy')) {
        steps[file.name - '.groovy'] = shell.parse(file)
    }
}

Map results = [:]
config.scenarios.each { Map scenario ->
    results[scenario.name] = runScenario(scenario, steps, shell, library)
}
new File(config.output as String).text = JsonOutput.toJson(results)

/**
 * Declarative pipeline, as far as this Jenkinsfile uses it: environment (evaluated once, before the stages),
 * stages run in order, `when { branch 'x' }` against BRANCH_NAME, a failure (or an abort) skips the stages after
 * it, stage and pipeline post conditions by currentBuild.currentResult. Options and parameters are recorded only.
 */
class Pipeline {
    Closure body
    Map<String, Object> environment = [:]
    List<Map> stages = []
    Map<String, Closure> post = [:]
    List<String> parameters = []

    void define(Closure body) {
        this.body = body
    }

    static Closure delegating(Closure closure, Object delegate) {
        Closure copy = closure.rehydrate(delegate, closure.owner, closure.thisObject)
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        return copy
    }

    // the directives of pipeline {}, called through delegating(body, this)
    void agent(Object... a) {}
    void options(Closure c) {}
    void parameters(Closure c) { delegating(c, new ParameterCollector(names: parameters)).call() }
    void environment(Closure c) { delegating(c, new EnvironmentCollector(values: environment)).call() }
    void stages(Closure c) { delegating(c, new StagesCollector(stages: stages)).call() }
    void post(Closure c) { post = PostCollector.collect(c) }

    Object run(Map env, Map currentBuild, List events) {
        delegating(body, this).call()
        environment.each { k, v -> env[k] = v?.toString() }
        boolean stopped = false
        for (Map stage : stages) {
            if (stopped || (stage.branch && stage.branch != env.BRANCH_NAME)) {
                events << [step: 'stage skipped', name: stage.name]
                continue
            }
            events << [step: 'stage', name: stage.name]
            env.STAGE_NAME = stage.name
            try {
                (stage.steps as Closure).call()
            } catch (Throwable t) {
                currentBuild.currentResult = t.getClass().name.endsWith('FlowInterruptedException') ? 'ABORTED' : 'FAILURE'
                events << [step: 'stage failed', name: stage.name, error: String.valueOf(t.message)]
                stopped = true
            } finally {
                runPost(stage.post as Map, currentBuild)
                env.remove('STAGE_NAME')
            }
        }
        runPost(post, currentBuild)
        return currentBuild.currentResult
    }

    static void runPost(Map<String, Closure> conditions, Map currentBuild) {
        Map<String, String> results = [success: 'SUCCESS', failure: 'FAILURE', unstable: 'UNSTABLE', aborted: 'ABORTED']
        ['always', 'aborted', 'failure', 'success', 'unstable', 'cleanup'].each { String name ->
            Closure body = conditions[name]
            if (body && (!results[name] || results[name] == currentBuild.currentResult)) {
                body.call()
            }
        }
    }
}

class ParameterCollector {
    List<String> names
    void string(Map a) { names << (a.name as String) }
}

class EnvironmentCollector {
    Map<String, Object> values
    def propertyMissing(String name, Object value) { values[name] = value }
}

class StagesCollector {
    List<Map> stages
    void stage(String name, Closure body) {
        StageCollector stage = new StageCollector(name: name)
        Pipeline.delegating(body, stage).call()
        stages << [name: name, branch: stage.branch, steps: stage.steps, post: stage.post]
    }
}

class StageCollector {
    String name
    String branch
    Closure steps
    Map<String, Closure> post = [:]
    void options(Closure c) {}
    void when(Closure c) { Pipeline.delegating(c, this).call() }
    void branch(String pattern) { branch = pattern }
    void steps(Closure c) { steps = c }
    void post(Closure c) { post = PostCollector.collect(c) }
}

class PostCollector {
    Map<String, Closure> conditions = [:]
    static Map<String, Closure> collect(Closure c) {
        PostCollector collector = new PostCollector()
        Pipeline.delegating(c, collector).call()
        return collector.conditions
    }
    void always(Closure c) { conditions.always = c }
    void success(Closure c) { conditions.success = c }
    void failure(Closure c) { conditions.failure = c }
    void unstable(Closure c) { conditions.unstable = c }
    void aborted(Closure c) { conditions.aborted = c }
    void cleanup(Closure c) { conditions.cleanup = c }
}

Map runScenario(Map scenario, Map<String, Script> steps, GroovyShell shell, File library) {
    File workspace = new File(scenario.workspace as String)
    workspace.mkdirs()
    List<Map> events = []
    Map env = [:] + (scenario.env ?: [:])
    Map credentials = scenario.credentials ?: [:]
    Map currentBuild = [currentResult: scenario.currentResult ?: 'SUCCESS', result: null,
                        startTimeInMillis: scenario.startTimeInMillis ?: System.currentTimeMillis(), rawBuild: null]
    List<File> cwd = [workspace]
    Binding binding = new Binding()
    binding.setVariable('env', env)
    binding.setVariable('params', [:] + (scenario.params ?: [:]))
    binding.setVariable('currentBuild', currentBuild)
    binding.setVariable('AbortException', AbortException)

    Closure resolve = { String path -> path.startsWith('/') ? new File(path) : new File(cwd.last(), path) }
    Closure overlay = { Map values, Closure body ->
        Map saved = values.collectEntries { k, v -> [k, env.containsKey(k) ? env[k] : '__unset__'] }
        env.putAll(values)
        try {
            return body.call()
        } finally {
            saved.each { k, v -> if (v == '__unset__') { env.remove(k) } else { env[k] = v } }
        }
    }
    binding.setVariable('echo', { Object message -> events << [step: 'echo', message: String.valueOf(message)] })
    binding.setVariable('sleep', { Map a -> events << [step: 'sleep', time: a.time, unit: a.unit] })
    binding.setVariable('error', { String message -> throw new AbortException(message) })
    binding.setVariable('unstable', { Object message ->
        currentBuild.currentResult = 'UNSTABLE'
        events << [step: 'unstable', message: String.valueOf(message)]
    })
    binding.setVariable('writeFile', { Map a ->
        File file = resolve(a.file as String)
        file.parentFile.mkdirs()
        file.setText(a.text as String, (a.encoding ?: 'UTF-8') as String)
    })
    binding.setVariable('readFile', { Object a -> resolve((a instanceof Map ? a.file : a) as String).getText('UTF-8') })
    binding.setVariable('fileExists', { Object a -> resolve((a instanceof Map ? a.file : a) as String).exists() })
    binding.setVariable('pwd', { Map a = [:] ->
        if (a.tmp) {
            File tmp = new File(workspace.path + '@tmp')
            tmp.mkdirs()
            return tmp.path
        }
        return cwd.last().path
    })
    binding.setVariable('dir', { String path, Closure body ->
        File target = resolve(path)
        target.mkdirs()
        cwd << target
        try {
            return body.call()
        } finally {
            cwd.remove(cwd.size() - 1)
        }
    })
    binding.setVariable('deleteDir', { -> cwd.last().deleteDir(); events << [step: 'deleteDir', path: cwd.last().path] })
    binding.setVariable('libraryResource', { String path -> new File(library, "resources/${path}").getText('UTF-8') })
    binding.setVariable('withEnv', { List pairs, Closure body ->
        Map values = pairs.collectEntries { Object pair ->
            String text = pair.toString()
            int i = text.indexOf('=')
            [text.substring(0, i), text.substring(i + 1)]
        }
        overlay(values, body)
    })
    binding.setVariable('string', { Map a -> [kind: 'string'] + a })
    binding.setVariable('usernamePassword', { Map a -> [kind: 'usernamePassword'] + a })
    binding.setVariable('withCredentials', { List bindings, Closure body ->
        Map values = [:]
        bindings.each { Map b ->
            if (!credentials.containsKey(b.credentialsId)) {
                throw new AbortException("Could not find credentials entry with ID '${b.credentialsId}'")
            }
            if (b.kind == 'string') {
                values[b.variable] = credentials[b.credentialsId]
            } else {
                values[b.usernameVariable] = credentials[b.credentialsId].username
                values[b.passwordVariable] = credentials[b.credentialsId].password
            }
        }
        events << [step: 'withCredentials', ids: bindings*.credentialsId]
        overlay(values, body)
    })
    binding.setVariable('sh', { Object a ->
        Map m = a instanceof Map ? a : [script: String.valueOf(a)]
        String script = m.script
        // Scenario "canned" rules stand in for tools that are not here (docker, trivy, ansible...): the first
        // rule whose regex finds the script (or its label) answers; {"real": true} runs it. No rule: run it.
        Map rule = (scenario.canned ?: []).find { Map r -> (script =~ r.match) || (m.label && m.label =~ r.match) }
        if (rule && !rule.real) {
            events << [step: 'sh', label: m.label, rc: rule.rc ?: 0, script: script, stdout: rule.stdout ?: '',
                       stderr: '', canned: true]
            if (m.returnStatus) {
                return rule.rc ?: 0
            }
            if (rule.rc) {
                throw new AbortException("script returned exit code ${rule.rc}")
            }
            return m.returnStdout ? (rule.stdout ?: '') : null
        }
        File file = File.createTempFile('harness-sh', '.sh')
        file.text = script
        List<String> command = script.startsWith('#!') ?
            (script.readLines()[0].substring(2).trim().tokenize(' ') + [file.path]) : ['/bin/sh', '-xe', file.path]
        ProcessBuilder builder = new ProcessBuilder(command).directory(cwd.last())
        env.each { k, v -> if (v != null) { builder.environment().put(k as String, v as String) } }
        Process process = builder.start()
        StringBuffer out = new StringBuffer()
        StringBuffer err = new StringBuffer()
        process.consumeProcessOutput(out, err)
        int rc = process.waitFor()
        process.waitForProcessOutput(out, err)
        file.delete()
        // What Jenkins would show: the label, the script as Groovy produced it, its output.
        events << [step: 'sh', label: m.label, rc: rc, script: script, stdout: out.toString(), stderr: err.toString()]
        if (m.returnStatus) {
            return rc
        }
        if (rc != 0) {
            throw new AbortException("script returned exit code ${rc}")
        }
        return m.returnStdout ? out.toString() : null
    })
    steps.each { String name, Script step ->
        step.binding = binding
        binding.setVariable(name, { Object[] a -> step.invokeMethod('call', a) })
    }

    ['checkout', 'junit', 'archiveArtifacts'].each { String name ->
        binding.setVariable(name, { Object[] a -> events << [step: name] })
    }
    binding.setVariable('scm', [:])
    binding.setVariable('_', null)
    binding.setVariable('sshagent', { Map a, Closure body -> events << [step: 'sshagent', ids: a.credentials]; body.call() })
    binding.setVariable('script', { Closure body -> body.call() })
    Pipeline pipeline = new Pipeline()
    binding.setVariable('pipeline', { Closure body -> pipeline.define(body) })

    Map outcome = [error: null, errorClass: null, sameError: null, returned: null]
    Script script
    if (scenario.jenkinsfile) {
        CompilerConfiguration config = new CompilerConfiguration()
        config.addCompilationCustomizers(new ImportCustomizer().addImports('org.jenkinsci.plugins.workflow.libs.Library'))
        script = new GroovyShell(shell.classLoader, binding, config).parse(new File(scenario.jenkinsfile as String))
    } else {
        script = shell.parse(scenario.script as String, "Scenario_${scenario.name.replaceAll('[^A-Za-z0-9]', '_')}.groovy")
    }
    script.binding = binding
    try {
        def returned = script.run()
        if (scenario.jenkinsfile) {
            returned = pipeline.run(env, currentBuild, events)
        }
        outcome.returned = (returned instanceof Boolean || returned instanceof Number || returned instanceof String) ?
            returned : String.valueOf(returned)
    } catch (Throwable t) {
        outcome.error = t.message
        outcome.errorClass = t.getClass().name
        outcome.sameError = binding.hasVariable('thrown') ? t.is(binding.getVariable('thrown')) : null
    }
    outcome.events = events
    outcome.currentResult = currentBuild.currentResult
    return outcome
}
