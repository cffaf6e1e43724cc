@echo off
rem aerovblk @VERSION@ installer for Windows 7 SP1, x86 and x64.
rem Run it from an elevated command prompt ("Run as administrator"):
rem     install.cmd              stage the driver package and install it on every
rem                              virtio-blk controller present (PCI 1AF4:1042)
rem     install.cmd /bootdisk    the same, then prepare this Windows for booting from a
rem                              virtio-blk disk: copy aerovblk.sys to System32\drivers and
rem                              import bootdisk.reg (critical device database + service)
rem Exit codes: 0 done, 1 pnputil failed, 2 not elevated, 3 unsupported processor
rem architecture, 4 a package file is missing, 5 certificate import failed, 6 boot-disk
rem preparation failed, 7 bad command line.
rem Generated from dist/install.cmd by mk/dist.mk (CRLF line endings: cmd.exe needs them).
setlocal EnableExtensions
set "AEROVBLK_VERSION=@VERSION@"
set "TESTSIGNED=@TESTSIGNED@"
set "PKG=%~dp0"
set "BOOTDISK=0"
set "MISSING="
if "%~1"=="" goto args_done
if /i "%~1"=="/bootdisk" set "BOOTDISK=1"
if /i "%~1"=="/?" goto usage
if /i "%~1"=="-h" goto usage
if not "%BOOTDISK%"=="1" goto bad_usage
if not "%~2"=="" goto bad_usage
:args_done

echo aerovblk %AEROVBLK_VERSION% - virtio-blk StorPort miniport for Windows 7 SP1

rem --- elevation: "net session" needs administrator rights ---
net session >nul 2>&1
if errorlevel 1 goto not_admin

rem --- processor architecture: a 32-bit prompt on 64-bit Windows says x86 in
rem PROCESSOR_ARCHITECTURE and the real one in PROCESSOR_ARCHITEW6432; there, System32
rem is redirected, and Sysnative reaches the 64-bit tools ---
set "ARCH=%PROCESSOR_ARCHITECTURE%"
if defined PROCESSOR_ARCHITEW6432 set "ARCH=%PROCESSOR_ARCHITEW6432%"
set "SYSDIR=%SystemRoot%\System32"
if defined PROCESSOR_ARCHITEW6432 set "SYSDIR=%SystemRoot%\Sysnative"
set "PKGARCH="
if /i "%ARCH%"=="AMD64" set "PKGARCH=amd64"
if /i "%ARCH%"=="x86" set "PKGARCH=x86"
if not defined PKGARCH goto bad_arch
echo Processor architecture %ARCH%: installing from %PKGARCH%\

rem --- Windows version: the driver is built and tested for Windows 7 SP1 (6.1) ---
set "WINVER="
for /f "tokens=2 delims=[]" %%v in ('ver') do set "WINVER=%%v"
echo %WINVER% | find "6.1." >nul
if errorlevel 1 echo WARNING: this package is for Windows 7 SP1, version 6.1. This Windows: %WINVER%

rem --- package files ---
set "INF=%PKG%%PKGARCH%\aerovblk.inf"
for %%f in (aerovblk.inf aerovblk.sys aerovblk.cat) do if not exist "%PKG%%PKGARCH%\%%f" set "MISSING=%PKGARCH%\%%f"
if defined MISSING goto missing
if not "%BOOTDISK%"=="1" goto files_done
if not exist "%PKG%bootdisk.reg" set "MISSING=bootdisk.reg"
if defined MISSING goto missing
:files_done

rem --- test certificate: trusted root and trusted publisher, so that Windows accepts
rem the test signatures (and pnputil does not ask) ---
if not "%TESTSIGNED%"=="1" goto install
if not exist "%PKG%aerovblk-test.cer" set "MISSING=aerovblk-test.cer"
if defined MISSING goto missing
echo Importing the test certificate aerovblk-test.cer (Root, TrustedPublisher)
"%SYSDIR%\certutil.exe" -f -addstore Root "%PKG%aerovblk-test.cer" >nul
if errorlevel 1 goto cert_failed
"%SYSDIR%\certutil.exe" -f -addstore TrustedPublisher "%PKG%aerovblk-test.cer" >nul
if errorlevel 1 goto cert_failed

:install
echo Installing %INF%
"%SYSDIR%\pnputil.exe" -i -a "%INF%"
set "RC=%ERRORLEVEL%"
if "%RC%"=="0" goto installed
if "%RC%"=="3010" goto installed_reboot
rem 259 = ERROR_NO_MORE_ITEMS: the package was added to the driver store, but no device
rem uses it yet (no virtio-blk controller present, or the disk still on another one).
if "%RC%"=="259" goto staged
goto pnputil_failed

:installed_reboot
echo The driver is installed; Windows asks for a restart.
goto after_install
:staged
echo The driver package is in the driver store; no virtio-blk controller uses it yet.
echo Windows installs it when the device appears.
goto after_install
:installed
echo The driver is installed.

:after_install
if not "%BOOTDISK%"=="1" goto done
echo Preparing boot from a virtio-blk disk: %SystemRoot%\System32\drivers\aerovblk.sys and bootdisk.reg
copy /y "%PKG%%PKGARCH%\aerovblk.sys" "%SYSDIR%\drivers\aerovblk.sys" >nul
if errorlevel 1 goto bootdisk_failed
"%SYSDIR%\reg.exe" import "%PKG%bootdisk.reg"
if errorlevel 1 goto bootdisk_failed
echo Done: shut Windows down, move the system disk to the virtio-blk controller, start it.

:done
if not "%TESTSIGNED%"=="1" goto end
echo.
echo This package is TEST-SIGNED. 64-bit Windows 7 loads the driver only in test mode.
echo If it is not on yet, run, then restart Windows:
echo     bcdedit /set testsigning on
:end
set "EXITCODE=0"
goto finish

:usage
echo usage: install.cmd [/bootdisk]    (from an elevated command prompt)
echo   /bootdisk  also copy aerovblk.sys to System32\drivers and import bootdisk.reg,
echo              before moving the system disk to a virtio-blk controller
set "EXITCODE=0"
goto finish
:bad_usage
echo ERROR: unknown argument "%*". usage: install.cmd [/bootdisk]
set "EXITCODE=7"
goto finish
:not_admin
echo ERROR: administrator rights are needed. Right-click "Command Prompt",
echo choose "Run as administrator", and run install.cmd again from there.
set "EXITCODE=2"
goto finish
:bad_arch
echo ERROR: processor architecture "%ARCH%" is not supported: this package has x86
echo and amd64 drivers only.
set "EXITCODE=3"
goto finish
:missing
echo ERROR: %MISSING% is missing next to install.cmd: extract the whole archive and
echo run install.cmd from the extracted folder.
set "EXITCODE=4"
goto finish
:cert_failed
echo ERROR: certutil could not import aerovblk-test.cer into the Root and
echo TrustedPublisher stores of the local machine.
set "EXITCODE=5"
goto finish
:pnputil_failed
echo ERROR: pnputil failed with exit code %RC% for %INF%.
echo The setup log %SystemRoot%\inf\setupapi.dev.log says why.
set "EXITCODE=1"
goto finish
:bootdisk_failed
echo ERROR: could not copy aerovblk.sys to %SYSDIR%\drivers or import bootdisk.reg.
echo Do not move the system disk to the virtio-blk controller.
set "EXITCODE=6"
goto finish

rem --- every exit: started from Explorer (double-click, "Run as administrator"), cmd
rem runs with /c and the window would close at once: keep it open until a key is
rem pressed. (Scripts that run it with cmd /c: redirect its input from nul.) ---
:finish
set "FROMEXPLORER="
for %%a in (%CMDCMDLINE%) do if /i "%%~a"=="/c" set "FROMEXPLORER=1"
if defined FROMEXPLORER pause
exit /b %EXITCODE%
