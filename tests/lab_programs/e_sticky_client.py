from socket import *

tcp_cli_socket = socket(AF_INET, SOCK_STREAM)

# 连接服务器
serveraddr = ("192.168.61.114", 7777)
tcp_cli_socket.connect(serveraddr)

tcp_cli_socket.send("hello".encode("gbk"))
tcp_cli_socket.send("kniom".encode("gbk"))
