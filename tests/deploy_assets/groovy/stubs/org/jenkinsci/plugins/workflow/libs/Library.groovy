package org.jenkinsci.plugins.workflow.libs

import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy

// Stand-in for the pipeline-groovy-lib annotation behind "@Library('name') _", for compiling a Jenkinsfile here.
@Retention(RetentionPolicy.SOURCE)
@interface Library {
    String[] value()
    boolean changelog() default true
}
